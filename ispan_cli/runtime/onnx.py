"""ONNX Runtime predictor: runs an exported ``.onnx`` file behind the Predictor interface.

Needs no torch: the file carries the labels, preprocessing and sampling in its metadata, and the
clips come from the same :func:`ispan_cli.video.preprocess.preprocess` as the PyTorch path.

Providers: onnxruntime-gpu lists the TensorRT and CUDA providers even where they cannot start and
then silently falls back to the CPU, logging errors on stderr. So a provider counts as chosen
only when a session really runs on it; the attempts happen with onnxruntime's C++ log silenced,
and why a GPU provider did not start is kept in ``provider_note`` for the command to show.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.identity import ModelIdentity
from ispan_cli.model_folder import sha256_file
from ispan_cli.native_output import ort_failure_reason, quiet_native_output
from ispan_cli.runtime.device import parse_device
from ispan_cli.runtime.onnx_format import FUSED, INPUT_NAME, LEVEL_PREFIX, LOGITS, OnnxModelInfo
from ispan_cli.runtime.predictor import Predictor, softmax
from ispan_cli.video.preprocess import PreprocessSpec, spec_from_config

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# TensorRT builds an engine per model and input shape the first time (minutes for a ResNet-50);
# the cache makes that a one-off.
TRT_CACHE_ENV = "ISPAN_TRT_CACHE"


@dataclass(frozen=True)
class ChosenProvider:
    name: str  # the provider the session runs on
    device: str  # "cpu" or "cuda:N"
    note: str  # why faster providers were not used ("" when none was skipped)


def create_session(path: str | Path, device: str = "auto", threads: int = 0, spin: bool = False):
    """An InferenceSession on the best provider that really initialises for ``device``.

    auto: TensorRT, then CUDA (device 0), then the CPU; cpu: the CPU only; cuda[:N]: TensorRT
    or CUDA on device N, else a UsageError saying why neither started.
    spin: let idle intra-op threads busy-wait (ONNX Runtime's default). Off by default: ispan
    runs sessions beside decode workers, whose cores a spinning pool takes (the thread plan's
    ``spin``, see runtime/threads.py).
    Returns (session, ChosenProvider).
    """
    import onnxruntime as ort

    kind, index = parse_device(device)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    listed = set(ort.get_available_providers())
    reasons: list[str] = []
    if kind != "cpu":
        gpu = index or 0
        _preload_cuda_libraries(ort)
        for name, provider_options in _gpu_candidates(gpu):
            if name not in listed:
                reasons.append(f"{name} is not in this onnxruntime build")
                continue
            session, why = _try_provider(ort, path, options, name, provider_options)
            if session is not None:
                note = "; ".join(reasons)
                return session, ChosenProvider(name, f"cuda:{gpu} ({name})", note)
            reasons.append(f"{name}: {why}")
        if kind == "cuda":
            raise UsageError(
                f"--device {device}: no GPU provider of ONNX Runtime initialises "
                f"({'; '.join(reasons)}); use --device cpu, and see `ispan doctor`"
            )
    session = _load_session(ort, path, options, [CPU])
    return session, ChosenProvider(CPU, "cpu", "; ".join(reasons))


def _gpu_candidates(gpu: int) -> list[tuple[str, dict]]:
    cache = os.environ.get(TRT_CACHE_ENV) or str(Path.home() / ".cache" / "ispan" / "tensorrt")
    trt = {
        "device_id": gpu,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
    }
    return [(TRT, trt), (CUDA, {"device_id": gpu})]


def _preload_cuda_libraries(ort) -> None:
    # onnxruntime-gpu can use the CUDA/cuDNN libraries that PyTorch's wheels installed; without
    # this it only finds system-wide ones. Absent libraries are simply not preloaded.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            with quiet_native_output():
                preload()
        except Exception:  # nothing to preload here: the provider attempt reports the reason
            pass


def _try_provider(ort, path, options, name: str, provider_options: dict):
    """(session, "") when a session really runs on ``name``; (None, reason) otherwise."""
    captured: list[str] = []
    try:
        with quiet_native_output(captured):
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=[(name, provider_options), CPU]
            )
    except Exception as exc:
        text = captured[0] if captured else ""
        return None, ort_failure_reason(text) or " ".join(str(exc).split())[:200]
    if session.get_providers()[0] != name:
        text = captured[0] if captured else ""
        return None, f"does not initialise ({ort_failure_reason(text) or 'no reason given'})"
    return session, ""


def _load_session(ort, path, options, providers):
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        raise ISpanError(
            f"{path} is not a readable ONNX model (ONNX Runtime: "
            f"{' '.join(str(exc).split())[:200]}); export it again with `ispan export --onnx`"
        ) from exc


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ISpanError(f"ONNX file {path} does not exist")
    if path.stat().st_size == 0:
        raise ISpanError(f"{path} is empty (0 bytes); export it again with `ispan export --onnx`")


class OnnxPredictor(Predictor):
    """Inference with ONNX Runtime on an exported file (fp32 or int8)."""

    runtime = "onnx"

    def __init__(
        self,
        path: str | Path,
        identity: ModelIdentity | None = None,
        device: str = "auto",
        threads: int = 0,
        spin: bool = False,
    ) -> None:
        self.path = Path(path)
        _check_file(self.path)
        self.session, chosen = create_session(self.path, device, threads, spin)
        # the metadata through the session: the file is parsed once, and the onnx package is
        # not needed at inference time
        props = self.session.get_modelmeta().custom_metadata_map
        self.info: OnnxModelInfo = OnnxModelInfo.from_props(dict(props), str(self.path))
        self.provider = chosen.name
        self.provider_note = chosen.note
        self.device = chosen.device
        self.precision = self.info.precision
        self.labels = self.info.labels
        self.num_segments = self.info.num_segments
        self.preprocessing: PreprocessSpec = preprocessing_of(self.info)
        if identity is None:
            identity = ModelIdentity(str(self.path), None, sha256_file(self.path), "file")
        self.identity = identity
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._check_graph()

    def _check_graph(self) -> None:
        """The graph against what ispan feeds it and what its metadata says, before any video is
        decoded: a wrong file is one error line, not a failure on every input."""
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [i.name for i in inputs]
            raise ISpanError(
                f"{self.path} takes the input(s) {names}; ispan feeds one input named "
                f"{INPUT_NAME!r}: export the model with `ispan export --onnx`"
            )
        shape = list(inputs[0].shape)
        crop = self.preprocessing.crop
        expected = ["N", "K", "C", crop, crop]
        if len(shape) != len(expected):
            raise ISpanError(
                f"{self.path}: its input {INPUT_NAME!r} has rank {len(shape)} {shape}; ispan feeds "
                f"rank 5 (N, K, C, {crop}, {crop}) clips: export the model with `ispan export "
                "--onnx`"
            )
        for axis in (3, 4):  # static spatial sizes must be the recorded crop
            if isinstance(shape[axis], int) and shape[axis] != crop:
                raise ISpanError(
                    f"{self.path}: its input {INPUT_NAME!r} is {shape} but its preprocessing crops "
                    f"{crop}x{crop}; the file's graph and metadata disagree, export it again"
                )
        if not self._outputs or self._outputs[0] != LOGITS:
            raise ISpanError(f"{self.path}: its first output is not {LOGITS!r}")
        missing = sorted(set(self.info.outputs) - set(self._outputs))
        if missing:
            raise ISpanError(
                f"{self.path}: its metadata lists output(s) {missing} that the graph lacks; "
                "export it again"
            )
        logits = self.session.get_outputs()[0].shape
        classes = logits[-1] if logits else None
        if len(logits) != 2:
            raise ISpanError(
                f"{self.path}: its {LOGITS!r} output has shape {list(logits)}; ispan expects "
                "(N, num_classes)"
            )
        if isinstance(classes, int) and self.labels and classes != len(self.labels):
            raise ISpanError(
                f"{self.path} scores {classes} classes but its metadata has {len(self.labels)} "
                "labels; the graph and its labels must come from the same export"
            )

    @property
    def with_attention(self) -> bool:
        return FUSED in self._outputs

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, K, 3, S, S) float32 -> (N, num_classes) logits."""
        (out,) = self._run([LOGITS], x)
        if (
            out.ndim != 2
            or out.shape[0] != len(x)
            or (self.labels and out.shape[1] != len(self.labels))
        ):
            raise ISpanError(
                f"{self.path} returned logits shaped {list(out.shape)} for {len(x)} clip(s) and "
                f"{len(self.labels)} labels; the graph and its labels must come from the same "
                "export"
            )
        return out

    def _run(self, names: list[str], x: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(names, {INPUT_NAME: _contiguous(x)})
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail...)
            reason = " ".join(str(exc).split())[:300]
            raise ISpanError(
                f"ONNX Runtime cannot run {self.path} on clips shaped {list(x.shape)} ({reason})"
            ) from None

    def logits_with_attention(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """(N, K, 3, S, S) -> logits, fused (N, d, K, h, w), per-level maps (same shape)."""
        if not self.with_attention:
            raise ISpanError(
                f"{self.path} has no attention outputs; export it with `ispan export --onnx "
                "--with-attention`"
            )
        levels = sorted(n for n in self._outputs if n.startswith(LEVEL_PREFIX))
        levels.sort(key=lambda n: int(n[len(LEVEL_PREFIX) :]))
        out = self._run([LOGITS, FUSED, *levels], x)
        return out[0], out[1], list(out[2:])

    def predict(self, clips: np.ndarray) -> np.ndarray:
        b, crops = clips.shape[:2]
        x = clips.reshape(b * crops, *clips.shape[2:])  # (B, crops, K, 3, S, S) -> (B*crops, ...)
        logits = self.logits(x).astype(np.float32).reshape(b, crops, -1).mean(1)
        return softmax(logits)


def preprocessing_of(info: OnnxModelInfo) -> PreprocessSpec:
    """The file's recorded preprocessing, else the same default a model folder gets."""
    from types import SimpleNamespace

    # spec_from_config reads only input_size from the ModelConfig; building a real one would
    # import ispan_cli.nn (torch), which the ONNX path must not need
    size = SimpleNamespace(input_size=int(info.config["model"].get("input_size", 224)))
    return spec_from_config(size, info.config)  # type: ignore[arg-type]


def _contiguous(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)
