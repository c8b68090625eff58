"""int8 static quantization with onnxruntime's tools, calibrated on real decoded clips.

QDQ format with per-channel weights, the form ONNX Runtime's CPU kernels fuse into int8
convolutions. Only convolutions and the classifier (Conv, Gemm, MatMul of the backbone) are
quantized; the attention's softmax, normalisation and ``A X`` stay in float, because they are a
negligible share of the time and the most sensitive to rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.export.metadata import INPUT_NAME, PREFIX
from ispan_cli.export.verify import Agreement, compare
from ispan_cli.video.preprocess import PreprocessSpec

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


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


def find_videos(folder: str | Path) -> list[Path]:
    """Video files under ``folder`` (recursive), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ISpanError(f"--calibration {folder} is not a folder of videos")
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise ISpanError(
            f"--calibration {folder} holds no videos ({', '.join(VIDEO_SUFFIXES)}); give a folder "
            "of clips like the ones the model will see"
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
) -> list[np.ndarray]:
    """One centre-crop (1, K, 3, S, S) clip per readable video; unreadable ones are skipped."""
    from dataclasses import replace

    from ispan_cli.inference.pipeline import load_clip

    clips = []
    for n, video in enumerate(videos):
        # a broken file among calibration clips is not worth failing the export for
        with contextlib.suppress(ISpanError):
            clips.append(load_clip(str(video), segments, replace(spec, crops=1), decoder).data)
        if on_clip:
            on_clip(n + 1, len(videos))
    return clips


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over in-memory clips."""

    def __init__(self, clips: Sequence[np.ndarray]) -> None:
        self._clips: Iterator[np.ndarray] = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._clips, None)
        return None if clip is None else {INPUT_NAME: np.ascontiguousarray(clip, np.float32)}

    def rewind(self) -> None:  # pragma: no cover - onnxruntime calls it for some methods only
        pass


def quantize_int8(fp32_path: Path, int8_path: Path, clips: Sequence[np.ndarray]) -> Path:
    """Writes the int8 model calibrated (min/max) on ``clips``; metadata is copied over with
    the precision set to int8."""
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
            from ispan_cli.diagnostics import quiet_native_output

            # the tools log per-node progress and hints on stdout/stderr
            with quiet_native_output():
                quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared),
                    str(quantized),
                    _Reader(clips),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "Gemm"],
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"CalibTensorRangeSymmetric": False},
                )
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
    """fp32 vs int8 logits on ``clips`` (ONNX Runtime, CPU)."""
    from ispan_cli.runtime.onnx import OnnxPredictor

    fp32 = OnnxPredictor(fp32_path, device="cpu")
    int8 = OnnxPredictor(int8_path, device="cpu")
    ref, cand = [], []
    for start in range(0, len(clips), batch):
        x = np.concatenate(clips[start : start + batch])  # (n, K, 3, S, S)
        ref.append(fp32.logits(x))
        cand.append(int8.logits(x))
    return compare(np.concatenate(ref), np.concatenate(cand))
