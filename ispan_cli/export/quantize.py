"""int8 static quantization with onnxruntime's tools, calibrated on real decoded clips.

A flow model is calibrated and checked on its own input: each video's K stacks of L flows,
made with the model's FlowSpec by the function ``classify --flow-model`` and ``export``'s
verification use (``inference.two_stream.load_flow_clip``: its method, bound and JPEG round
trip), so the ranges are those of the flow the model will see.

QDQ format, min/max calibration, per-channel int8 weights and uint8 activations: the form ONNX
Runtime's CPU kernels fuse into int8 convolutions. Only convolutions run in int8. Each one's ReLU
is folded into its output quantization (the quantizer is given Relu/Clip for that), so a
convolution's output is rounded once on a uint8 range starting at 0, not first on its signed
pre-activation range (about twice the step) and again after the ReLU.

Kept in float, and why (figures: benchmarks/int8_quality.py and the int8 tests):

- The classifier and the whole head after the backbone: attention scores, softmax, the rows'
  L2 normalisation, ``A X``, pooling, the classifier. Together a negligible share of the time.
  The classifier's input is the attention-pooled features, whose size depends on the clip, not
  only on the backbone: the rows of ``A`` have unit L2 norm, so ``A X`` grows with how spread the
  attention is (up to sqrt(P) times the features, P positions). Quantizing that input fixed its
  range to the calibration clips'; on other clips it reached up to 4 times that range and was
  clipped: the trained demo model, calibrated on synthetic-dataset clips, changed class on 10
  of 16 generated texture clips (31% of a 32-clip mix; now 0).
- The backbone's last convolutions, those no other convolution depends on: only float
  operators read their output, so int8 there speeds nothing up downstream but puts 8-bit
  rounding straight into the features the attention weighs (istpan_resnet50: 1 of 53
  convolutions, about 1% of the work).

The convolutions that read the model input get uint8 weights (zero point 128) rather than int8,
so ONNX Runtime runs them with its u8 x u8 kernels. Its u8 x s8 kernels, on CPUs without VNNI,
add pairs of products in saturating int16 (VPMADDUBSW); the input's mid-range zero point makes
every pixel's code large, and on bright colours (the demo's yellow target, R and G both high)
about 0.3% of the first convolution's pairs overflow, against a few per million at most in later
layers (emulated; this multiplied the demo model's int8 logit error by 6). Keeping that
convolution in float instead would cost about 15% of istpan_resnet50's int8 speed; uint8
weights cost about 2%.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.export.verify import Agreement, compare
from ispan_cli.runtime.onnx_format import INPUT_NAME, PREFIX
from ispan_cli.video.files import suffix_list, videos_in
from ispan_cli.video.flow_spec import FlowSpec
from ispan_cli.video.preprocess import PreprocessSpec


@dataclass(frozen=True)
class Int8Report:
    calibration_clips: int
    validation_clips: int
    validation_source: str  # "held-out" (from the calibration folder) | "generated"
    agreement: Agreement

    def to_dict(self) -> dict:
        return {
            "calibration_clips": self.calibration_clips,
            "validation_clips": self.validation_clips,
            "validation_source": self.validation_source,
            "agreement": self.agreement.to_dict(),
        }


def calibration_videos(folder: str | Path) -> list[Path]:
    """The videos under ``folder`` (recursive, sorted: :func:`ispan_cli.video.files.videos_in`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ISpanError(f"--calibration {folder} is not a folder of videos")
    videos = videos_in(folder)
    if not videos:
        raise ISpanError(
            f"--calibration {folder} holds no videos ({suffix_list()}); give a folder of clips "
            "like the ones the model will see"
        )
    return videos


def split_calibration(videos: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Every 5th video is held out for the agreement report (none when fewer than 5)."""
    if len(videos) < 5:
        return list(videos), []
    held = [v for i, v in enumerate(videos) if i % 5 == 4]
    return [v for i, v in enumerate(videos) if i % 5 != 4], held


def load_clips(
    videos: Sequence[Path],
    segments: int,
    spec: PreprocessSpec,
    decoder: str = "auto",
    on_clip: Callable[[int, int], None] | None = None,
    flow: FlowSpec | None = None,
) -> list[np.ndarray]:
    """One centre-crop clip per readable video; unreadable ones are skipped (see
    :func:`model_inputs`)."""
    return model_inputs(videos, segments, spec, decoder, on_clip, flow).clips


@dataclass(frozen=True)
class ModelInputs:
    """The model inputs made from some videos, and why the others gave none."""

    clips: list[np.ndarray]
    failures: list[str]  # one message per video that gave no clip

    def require(self, videos: int, where: str) -> list[np.ndarray]:
        """The clips; none at all is one error naming the first video's reason."""
        if not self.clips:
            first = self.failures[0] if self.failures else "no videos"
            raise ISpanError(
                f"no model input could be made from the {videos} video(s) of {where} "
                f"({first}); give videos the model can read"
            )
        return self.clips


def model_inputs(
    videos: Sequence[Path],
    segments: int,
    spec: PreprocessSpec,
    decoder: str = "auto",
    on_clip: Callable[[int, int], None] | None = None,
    flow: FlowSpec | None = None,
) -> ModelInputs:
    """One centre-crop input per video, as the model takes it: (1, K, 3, S, S) RGB, or for a
    flow model (``flow``: its FlowSpec) the (1, K, 2L, S, S) flow stacks, computed with the
    model's method and bound exactly as ``classify --flow-model`` computes them."""
    from dataclasses import replace

    from ispan_cli.flow.methods import create_method
    from ispan_cli.inference.two_stream import load_flow_clip
    from ispan_cli.video.clip import load_clip

    # made once: RAFT loads its weights when made; a method this machine lacks is one error here
    method = None if flow is None else create_method(flow.method, "auto")
    clips, failures = [], []
    for n, video in enumerate(videos):
        # a broken file among calibration clips is not worth failing the export for
        try:
            if flow is None:
                clips.append(load_clip(str(video), segments, replace(spec, crops=1), decoder).data)
            else:
                clip = load_flow_clip(
                    str(video), segments, flow, spec.crop, spec.resize, decoder, method=method
                )
                clips.append(clip.data)
        except ISpanError as exc:
            failures.append(str(exc))
        if on_clip:
            on_clip(n + 1, len(videos))
    return ModelInputs(clips, failures)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over in-memory clips."""

    def __init__(self, clips: Sequence[np.ndarray]) -> None:
        self._clips: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._clips, None)
        return None if clip is None else {INPUT_NAME: np.ascontiguousarray(clip, np.float32)}

    def rewind(self) -> None:  # pragma: no cover - onnxruntime calls it for some methods only
        pass


# Operator types handed to the quantizer. Relu and Clip are there so that it folds a
# convolution's activation into the convolution's output quantization (see the module docstring);
# they are not computed in int8 on their own.
QUANTIZED_OPS = ("Conv", "Relu", "Clip")


# Operators that only move or rescale values: a convolution reached from the model input through
# these alone reads the input frames themselves (reshaped, or normalised as googlenet does). The
# first input of a layout operator is its data; every input of the others is.
_LAYOUT_OPS = frozenset(
    {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather"}
)
_ELEMENTWISE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Concat", "Cast"})


def input_convolutions(model) -> list[str]:
    """Names of the convolutions that read the model input (the normalised frames) through
    layout and elementwise operators only: the backbone's first ones."""
    producers = {out: node for node in model.graph.node for out in node.output}
    constants = {tensor.name for tensor in model.graph.initializer}
    inputs = {value.name for value in model.graph.input} - constants

    def reads_input(tensor: str, seen: set[str]) -> bool:
        if tensor in inputs:
            return True
        node = producers.get(tensor)
        if node is None or tensor in seen:
            return False
        seen.add(tensor)
        if node.op_type in _LAYOUT_OPS:
            return reads_input(node.input[0], seen)
        if node.op_type in _ELEMENTWISE_OPS:
            return any(reads_input(name, seen) for name in node.input if name)
        return False

    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Conv" and reads_input(node.input[0], set())
    ]


def last_convolutions(model) -> list[str]:
    """Names of the convolutions that no other convolution depends on: the backbone's last ones,
    whose outputs are read only by float operators (attention, pooling, classifier)."""
    consumers: dict[str, list[int]] = {}
    nodes = list(model.graph.node)
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    last = []
    for node in nodes:
        if node.op_type != "Conv":
            continue
        seen: set[int] = set()
        stack = list(node.output)
        feeds_conv = False
        while stack and not feeds_conv:
            for index in consumers.get(stack.pop(), ()):
                if index in seen:
                    continue
                seen.add(index)
                if nodes[index].op_type == "Conv":
                    feeds_conv = True
                    break
                stack.extend(nodes[index].output)
        if not feeds_conv:
            last.append(node.name)
    return last


def _name_nodes(model) -> None:
    """Gives unnamed nodes a unique name: the quantizer excludes nodes by name."""
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"ispan_{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def quantize_int8(fp32_path: Path, int8_path: Path, clips: Sequence[np.ndarray]) -> Path:
    """Writes the int8 model calibrated (min/max) on ``clips``; metadata is copied over with
    the precision set to int8. What stays in float, and why: see the module docstring."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ispan_cli.export.graph import save_atomic

    if not clips:
        raise ISpanError("no calibration clip could be read; check the --calibration folder")
    with tempfile.TemporaryDirectory(prefix="ispan-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        try:
            from ispan_cli.native_output import quiet_native_output

            # the tools log per-node progress and hints on stdout/stderr
            with quiet_native_output():
                quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
                model = onnx.load(str(prepared))
                _name_nodes(model)
                onnx.save(model, str(prepared))
                excluded = last_convolutions(model)
                first = set(input_convolutions(model)) - set(excluded)
                weights = {tensor.name for tensor in model.graph.initializer}
                # uint8 weights (zero point 128): see the module docstring
                unsigned = {
                    node.input[1]: [{"axis": 0, "quant_type": QuantType.QUInt8, "symmetric": True}]
                    for node in model.graph.node
                    if node.name in first and node.input[1] in weights
                }
                quantize_static(
                    str(prepared),
                    str(quantized),
                    _Reader(clips),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                    nodes_to_exclude=excluded,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={
                        "CalibTensorRangeSymmetric": False,
                        "TensorQuantOverrides": unsigned,
                    },
                )
                del model
        except ISpanError:
            raise
        except Exception as exc:
            raise ISpanError(
                f"int8 quantization failed ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]})"
            ) from exc
        proto = onnx.load(str(quantized))
    source = onnx.load(str(fp32_path), load_external_data=False)
    del proto.metadata_props[:]
    for prop in source.metadata_props:
        entry = proto.metadata_props.add()
        entry.key = prop.key
        entry.value = "int8" if prop.key == f"{PREFIX}precision" else prop.value
    save_atomic(proto, int8_path)
    return int8_path


def int8_agreement(
    fp32_path: Path, int8_path: Path, clips: Sequence[np.ndarray], batch: int = 4
) -> Agreement:
    """fp32 vs int8 logits on ``clips`` (ONNX Runtime, CPU): RGB clips, or a flow model's
    flow stacks."""
    from ispan_cli.runtime.onnx import OnnxPredictor

    if not clips:
        raise ISpanError("no validation clip could be read to compare int8 with fp32 on")

    fp32 = OnnxPredictor(fp32_path, device="cpu")
    int8 = OnnxPredictor(int8_path, device="cpu")
    ref, cand = [], []
    for start in range(0, len(clips), batch):
        x = np.concatenate(clips[start : start + batch])  # (n, K, C, S, S), C: 3 or 2L
        ref.append(fp32.logits(x))
        cand.append(int8.logits(x))
    return compare(np.concatenate(ref), np.concatenate(cand))
