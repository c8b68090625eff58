"""What works on this machine: versions, video decoders, torch devices, ONNX Runtime providers.

Every probe does the real thing on a tiny input (decode a frame of a video written here, run a
tensor op on a device, run an ONNX session on a provider) instead of trusting what a library
lists: onnxruntime-gpu lists the CUDA provider on machines without a GPU, and a session asked for
it silently falls back to the CPU. Each probe catches its own failure and reports it, so one
broken part never hides the others. Nothing here prints; the command renders the report.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ispan_cli import __version__
from ispan_cli.native_output import ort_failure_reason, quiet_native_output

# Parts without which ispan cannot classify a video: a failure makes `ispan doctor` exit 1.
# (Hard dependencies that fail to import are broken too: the install itself is.)
REQUIRED_MODULES = ("torch", "torchvision", "numpy", "av", "onnx", "onnxruntime", "huggingface_hub")
OPTIONAL_MODULES = ("cv2",)
CPU_PROVIDER = "CPUExecutionProvider"

# A frame colour that survives 4:2:0 chroma subsampling and lossy coding within a few levels.
_COLOUR = (200, 60, 40)
_SIZE = (64, 48)  # width, height: even, as 4:2:0 needs


@dataclass(frozen=True)
class Check:
    """One probe: what was tried and what happened."""

    section: str  # versions | decoders | devices | onnxruntime
    name: str
    ok: bool
    required: bool
    detail: str  # a version, what worked, or why it failed and what to do


@dataclass(frozen=True)
class HubInfo:
    """Where Hub models come from (as huggingface_hub reads the HF_* variables)."""

    endpoint: str
    cache_dir: str
    offline: bool
    token_from_env: bool  # HF_TOKEN is set (its value is never read here)
    cached_models: int  # ispan model revisions in the cache
    error: str | None = None


@dataclass(frozen=True)
class Report:
    """Everything ``ispan doctor`` found."""

    checks: tuple[Check, ...]
    hub: HubInfo
    providers_listed: tuple[str, ...] = ()
    providers_working: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every required part works."""
        return not self.broken

    @property
    def broken(self) -> list[Check]:
        """The required checks that failed."""
        return [c for c in self.checks if c.required and not c.ok]

    def to_dict(self) -> dict:
        """The JSON document of ``ispan doctor --format json`` (schema in the README)."""
        return {
            "ok": self.ok,
            "broken": [f"{c.section}/{c.name}" for c in self.broken],
            "checks": [asdict(c) for c in self.checks],
            "onnxruntime_providers": {
                "listed": list(self.providers_listed),
                "working": list(self.providers_working),
            },
            "hub": asdict(self.hub),
        }


def run_diagnostics(progress: Callable[[str], None] | None = None) -> Report:
    """Runs every probe. progress: called with the name of each probe as it starts."""

    def step(name: str) -> None:
        if progress is not None:
            progress(name)

    checks: list[Check] = []
    step("versions")
    checks += _versions()
    with tempfile.TemporaryDirectory(prefix="ispan-doctor-") as tmp:
        step("video decoders")
        checks += _decoders(Path(tmp))
    step("torch devices")
    checks += _torch_devices()
    step("ONNX Runtime providers")
    ort_checks, listed = _onnxruntime_providers()
    checks += ort_checks
    working = tuple(c.name for c in ort_checks if c.ok and c.name in listed)
    step("Hub settings")
    return Report(
        checks=tuple(checks),
        hub=_hub(),
        providers_listed=tuple(listed),
        providers_working=working,
    )


# -- versions ------------------------------------------------------------------------------------


def _versions() -> list[Check]:
    checks = [
        Check("versions", "python", True, True, f"{platform.python_version()} ({sys.executable})"),
        Check("versions", "platform", True, False, platform.platform()),
        Check("versions", "ispan", True, True, __version__),
    ]
    for module in REQUIRED_MODULES + OPTIONAL_MODULES:
        checks.append(_module_version(module, required=module in REQUIRED_MODULES))
    return checks


def _module_version(module: str, required: bool) -> Check:
    display = "opencv" if module == "cv2" else module
    try:
        with quiet_native_output():
            mod = importlib.import_module(module)
    except Exception as exc:
        return Check("versions", display, False, required, f"not importable: {_one_line(exc)}")
    version = getattr(mod, "__version__", None)
    if version is None:
        # typically a file of the same name (av.py, torch/) shadowing the installed package
        where = getattr(mod, "__file__", None) or "a namespace package"
        return Check(
            "versions",
            display,
            False,
            required,
            f"the module imported from {where} is not the real {display}: rename or remove it",
        )
    detail = str(version)
    if module == "av":
        detail += f" (FFmpeg {getattr(mod, 'ffmpeg_version_info', '?')})"
    elif module == "torch":
        cuda = getattr(getattr(mod, "version", None), "cuda", None)
        detail += f" (CUDA {cuda} build)" if cuda else " (CPU-only build)"
    return Check("versions", display, True, required, detail)


# -- decoders ------------------------------------------------------------------------------------


def _decoders(tmp: Path) -> list[Check]:
    video, how = None, ""
    try:
        video = _write_video_pyav(tmp / "probe.mp4")
        how = "mpeg4 .mp4 written by PyAV"
    except Exception as exc:
        pyav_write_error = _one_line(exc)
        try:  # still give OpenCV something to decode
            video = _write_video_opencv(tmp / "probe.avi")
            how = "MJPEG .avi written by OpenCV"
        except Exception:
            video = None
    else:
        pyav_write_error = None

    checks = []
    if pyav_write_error is not None:
        checks.append(
            Check("decoders", "pyav", False, True, f"cannot write a video: {pyav_write_error}")
        )
    else:
        checks.append(_decode_check("pyav", True, lambda: _read_frame_pyav(video), how))
    if video is None:
        checks.append(
            Check("decoders", "opencv", False, False, "no test video could be written to decode")
        )
    else:
        checks.append(_decode_check("opencv", False, lambda: _read_frame_opencv(video), how))
    return checks


def _decode_check(name: str, required: bool, read: Callable, how: str) -> Check:
    try:
        with quiet_native_output():
            frame, backend = read()
    except Exception as exc:
        return Check("decoders", name, False, required, f"cannot decode: {_one_line(exc)}")
    width, height = _SIZE
    if frame.shape != (height, width, 3):
        return Check(
            "decoders", name, False, required, f"decoded a frame of shape {frame.shape}, "
            f"expected {(height, width, 3)}"
        )  # fmt: skip
    mean = [round(float(frame[..., c].mean())) for c in range(3)]
    if max(abs(m - e) for m, e in zip(mean, _COLOUR, strict=True)) > 24:
        return Check(
            "decoders", name, False, required, f"decoded wrong colours: RGB {mean}, expected "
            f"{list(_COLOUR)}"
        )  # fmt: skip
    return Check("decoders", name, True, required, f"decoded a {width}x{height} {how} ({backend})")


def _solid_frames(count: int = 8):
    import numpy as np

    width, height = _SIZE
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = _COLOUR
    return [frame] * count


def _write_video_pyav(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = _SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for rgb in _solid_frames():
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _write_video_opencv(path: Path) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, _SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot open an MJPG writer")
    for rgb in _solid_frames():
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _read_frame_pyav(path: Path):
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24"), f"FFmpeg {av.ffmpeg_version_info}"


def _read_frame_opencv(path: Path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise RuntimeError("cv2.VideoCapture cannot open the test video")
        ok, bgr = capture.read()
        if not ok:
            raise RuntimeError("cv2.VideoCapture opened the test video but returned no frame")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"OpenCV {capture.getBackendName()}"
    finally:
        capture.release()


# -- torch devices -------------------------------------------------------------------------------


def _torch_devices() -> list[Check]:
    try:
        import torch
    except Exception as exc:
        return [Check("devices", "cpu", False, True, f"torch not importable: {_one_line(exc)}")]
    checks = [_device_check(torch, "cpu", True, f"{torch.get_num_threads()} threads")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            try:
                props = torch.cuda.get_device_properties(index)
                what = (
                    f"{props.name}, compute {props.major}.{props.minor}, "
                    f"{props.total_memory / 2**30:.0f} GiB"
                )
            except Exception as exc:
                what = f"properties unreadable: {_one_line(exc)}"
            checks.append(_device_check(torch, f"cuda:{index}", False, what))
    else:
        checks.append(Check("devices", "cuda", False, False, _why_no_cuda(torch)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        checks.append(_device_check(torch, "mps", False, "Apple GPU"))
    return checks


def _device_check(torch, device: str, required: bool, what: str) -> Check:
    try:
        a = torch.ones(64, 64, device=device)
        total = float((a @ a).sum().item())  # .item() synchronises with the device
    except Exception as exc:
        return Check(
            "devices", device, False, required, f"{what}; a matmul fails: {_one_line(exc)}"
        )
    if total != 64.0**3:
        return Check("devices", device, False, required, f"{what}; a matmul gives wrong numbers")
    return Check("devices", device, True, required, f"{what}; a matmul runs")


def _why_no_cuda(torch) -> str:
    if not torch.version.cuda:
        return "torch is a CPU-only build (not required: ispan runs on the CPU)"
    reason = "no CUDA device visible"
    try:
        torch.cuda.init()
    except Exception as exc:  # says why, e.g. "Found no NVIDIA driver on your system"
        reason = re.split(r"(?<=\.)\s", " ".join(str(exc).split()), maxsplit=1)[0].rstrip(".")
    return f"{reason} (torch built for CUDA {torch.version.cuda}; not required)"


# -- ONNX Runtime --------------------------------------------------------------------------------


def _onnxruntime_providers() -> tuple[list[Check], list[str]]:
    try:
        with quiet_native_output():
            import onnxruntime as ort
    except Exception as exc:
        detail = f"onnxruntime not importable: {_one_line(exc)}"
        return [Check("onnxruntime", CPU_PROVIDER, False, True, detail)], []
    try:
        listed = list(ort.get_available_providers())
        model = _tiny_onnx_model()
    except Exception as exc:
        detail = f"cannot build the test model: {_one_line(exc)}"
        return [Check("onnxruntime", CPU_PROVIDER, False, True, detail)], []
    checks = [_provider_check(ort, model, provider) for provider in listed]
    if CPU_PROVIDER not in listed:
        checks.append(
            Check("onnxruntime", CPU_PROVIDER, False, True, f"not listed (only {listed})")
        )
    return checks, listed


def _tiny_onnx_model() -> bytes:
    """y = x @ W + x: a MatMul and an Add, the two ops every provider has."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, name="W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "x"], ["y"]),
        ],
        "ispan_doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[weight],
    )
    # opset 13 / IR 8: old enough for every onnxruntime ispan supports
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _provider_check(ort, model: bytes, provider: str) -> Check:
    import numpy as np

    required = provider == CPU_PROVIDER
    note = "" if required else " (not required)"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; what it says is captured below
    captured: list[str] = []
    try:
        with quiet_native_output(captured):
            session = ort.InferenceSession(model, sess_options=options, providers=[provider])
            used = session.get_providers()
            x = np.arange(4, dtype=np.float32).reshape(1, 4)
            (y,) = session.run(None, {"x": x})
    except Exception as exc:
        reason = ort_failure_reason(captured[0] if captured else "") or _one_line(exc)
        return Check("onnxruntime", provider, False, required, f"listed, fails: {reason}{note}")
    if not used or used[0] != provider:
        # onnxruntime falls back to the CPU when a provider cannot start; it only says so on stderr
        reason = ort_failure_reason(captured[0] if captured else "") or "no reason given"
        return Check(
            "onnxruntime",
            provider,
            False,
            required,
            f"listed, but does not initialise (a session falls back to "
            f"{', '.join(used) or 'nothing'}): {reason}{note}",
        )
    if not np.allclose(y, 3 * x):
        return Check(
            "onnxruntime", provider, False, required, f"runs but gives wrong numbers{note}"
        )
    return Check("onnxruntime", provider, True, required, "a session initialises and runs on it")


# -- Hub -----------------------------------------------------------------------------------------


def _hub() -> HubInfo:
    try:
        from ispan_cli.hub import hub_settings
        from ispan_cli.hub_cache import list_cached_models

        settings = hub_settings()
    except Exception as exc:
        return HubInfo("?", "?", False, "HF_TOKEN" in os.environ, 0, _one_line(exc))
    try:
        cached, error = len(list_cached_models(settings.cache_dir)), None
    except Exception as exc:
        cached, error = 0, f"cannot scan the cache: {_one_line(exc)}"
    return HubInfo(
        endpoint=settings.endpoint,
        cache_dir=str(settings.cache_dir),
        offline=settings.offline,
        token_from_env=bool(os.environ.get("HF_TOKEN")),
        cached_models=cached,
        error=error,
    )


# -- helpers -------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
