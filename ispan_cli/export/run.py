"""The export job: model -> verified ``.onnx`` (and optionally a calibrated int8 copy)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.export.quantize import Int8Report
from ispan_cli.export.verify import PROB_TOLERANCE, VerifyReport
from ispan_cli.model_folder import atomic_path
from ispan_cli.outputs import exclusive
from ispan_cli.runtime.loading import load_model
from ispan_cli.runtime.onnx_format import ONNX_FILE, OnnxModelInfo

Progress = Callable[[str], None]
GENERATED_CALIBRATION = 16
GENERATED_VALIDATION = 8
GENERATED_VIDEO = "a generated video (3 s, 320x240, H.264)"


@dataclass(frozen=True)
class ExportOptions:
    model: str | None = None
    output: Path | None = None
    opset: int = 18
    with_attention: bool = False
    verify: bool = True
    verify_video: Path | None = None
    int8: bool = False
    calibration: Path | None = None
    force: bool = False
    decoder: str = "auto"
    tolerance: float = PROB_TOLERANCE


@dataclass(frozen=True)
class ExportResult:
    path: Path
    size_bytes: int
    info: OnnxModelInfo
    verify: VerifyReport | None
    int8_path: Path | None
    int8_size_bytes: int | None
    int8: Int8Report | None
    seconds: float

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "model": {
                "id": self.info.model_id,
                "revision": self.info.revision,
                "weights_sha256": self.info.weights_sha256,
                "source": self.info.source,
            },
            "outputs": list(self.info.outputs),
            "opset": self.info.opset,
            "verify": self.verify.to_dict() if self.verify else None,
            "int8": (
                {
                    "path": str(self.int8_path),
                    "size_bytes": self.int8_size_bytes,
                    **self.int8.to_dict(),
                }
                if self.int8 and self.int8_path
                else None
            ),
            "seconds": round(self.seconds, 3),
        }


def output_paths(model_id: str, output: Path | None, int8: bool) -> tuple[Path, Path | None]:
    """Where the fp32 file (and the int8 copy, ``<stem>.int8.onnx``) go.

    No --output: ``<model name>.onnx`` in the current folder; a folder: ``DIR/model.onnx`` (so
    the folder works as ``--model DIR --runtime onnx``).
    """
    if output is None:
        path = Path(f"{Path(model_id.split('@')[0]).name}.onnx")
    elif output.is_dir() or str(output).endswith(("/", "\\")):
        path = output / ONNX_FILE
    elif output.suffix.lower() != ".onnx":
        raise UsageError(f"--output {output} must end in .onnx, or be a folder")
    else:
        path = output
    return path, (path.with_name(path.stem + ".int8.onnx") if int8 else None)


def run_export(options: ExportOptions, progress: Progress | None = None) -> ExportResult:
    """Exports, verifies (unless options.verify is False) and optionally quantizes."""
    from ispan_cli.export.graph import export_onnx, output_names

    say = progress or (lambda _message: None)
    start = time.perf_counter()
    if options.calibration is not None and not options.int8:
        raise UsageError("--calibration needs --int8")
    if options.verify_video is not None and not options.verify_video.is_file():
        raise UsageError(f"--verify-video {options.verify_video} is not a file")
    # a registry architecture gives a random-weight graph, for speed work only
    loaded = load_model(options.model, device="cpu", allow_registry=True)
    model, spec = loaded.model, loaded.preprocessing
    if options.int8 and loaded.flow is not None:
        raise UsageError(
            f"--int8 calibrates on RGB clips and {loaded.identity.id} is a flow model; export it "
            "without --int8"
        )
    path, int8_path = output_paths(loaded.identity.id, options.output, options.int8)
    existing = [p for p in (path, int8_path) if p is not None and p.exists()]
    if existing and not options.force:
        raise ISpanError(
            f"{existing[0]} already exists; pass --force to overwrite it, or choose another "
            "--output"
        )
    info = OnnxModelInfo(
        config=loaded.document,
        identity=loaded.identity,
        outputs=output_names(model, options.with_attention),
        precision="fp32",
        sampling=loaded.sampling.to_dict(),
        opset=options.opset,
    )
    say(f"exporting {loaded.identity.id} to {path} (opset {options.opset})")
    report = None
    # Exported, verified and quantized under a temporary name in the output's folder; renamed
    # only when all of it passed: a failed verification or a bad video never removes or
    # replaces the previous file, and an unverified file never gets the final name.
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        exclusive(path),
        atomic_path(path) as staged,
        tempfile.TemporaryDirectory(prefix="ispan-export-") as tmp,
    ):
        export_onnx(model, staged, info, options.opset)
        if options.verify:
            video = options.verify_video or _generated(Path(tmp) / "verify.mp4", seed=7)
            say(f"verifying against PyTorch on {options.verify_video or GENERATED_VIDEO}")
            report = _verify(model, staged, path, video, spec, options)
            if options.verify_video is None:
                report = replace(report, video=GENERATED_VIDEO)
        int8_report = None
        if options.int8 and int8_path is not None:
            int8_report = _int8(staged, int8_path, info, spec, options, Path(tmp), say)
    return ExportResult(
        path=path,
        size_bytes=path.stat().st_size,
        info=info,
        verify=report,
        int8_path=int8_path if int8_report else None,
        int8_size_bytes=int8_path.stat().st_size if int8_report and int8_path else None,
        int8=int8_report,
        seconds=time.perf_counter() - start,
    )


def _verify(
    model, staged: Path, path: Path, video: Path, spec, options: ExportOptions
) -> VerifyReport:
    from ispan_cli.export.verify import verify_export

    report = verify_export(model, staged, video, spec, options.decoder, options.tolerance)
    if not report.passed:  # raising discards the staged file: it never becomes ``path``
        a = report.agreement
        attention = (
            f", attention maps differ by up to {a.max_abs_attention_diff:.2e}"
            if a.max_abs_attention_diff is not None
            else ""
        )
        raise ISpanError(
            f"verification failed on {video}: probabilities differ by up to "
            f"{a.max_abs_prob_diff:.2e} (allowed {options.tolerance:g}), top-1 agreement "
            f"{a.top1_agreement:.0%}{attention}; {path} was not written (an earlier file there is "
            "unchanged). Rerun with --debug, or "
            "report it with the model and the video"
        )
    return report


def _int8(fp32: Path, int8: Path, info, spec, options: ExportOptions, tmp: Path, say) -> Int8Report:
    import onnx

    from ispan_cli.export.graph import save_atomic
    from ispan_cli.export.quantize import (
        calibration_videos,
        int8_agreement,
        load_clips,
        quantize_int8,
        split_calibration,
    )
    from ispan_cli.runtime.onnx_format import write_props

    k = info.num_segments
    if options.calibration is not None:
        calibration, held_out = split_calibration(calibration_videos(options.calibration))
        source = "held-out" if held_out else "calibration"
        validation = held_out or calibration
    else:
        from ispan_cli.video.synthetic import write_synthetic_video

        say(
            f"generating {GENERATED_CALIBRATION} calibration and {GENERATED_VALIDATION} "
            "validation clips"
        )
        calibration = [
            write_synthetic_video(tmp / f"cal{i:03d}.mp4", 3.0, seed=i)
            for i in range(GENERATED_CALIBRATION)
        ]
        validation = [
            write_synthetic_video(tmp / f"val{i:03d}.mp4", 3.0, seed=1000 + i)
            for i in range(GENERATED_VALIDATION)
        ]
        source = "generated"
    say(f"calibrating int8 on {len(calibration)} clip(s)")
    cal_clips = load_clips(calibration, k, spec, options.decoder)
    quantize_int8(fp32, int8, cal_clips)
    say(f"comparing int8 with fp32 on {len(validation)} {source} clip(s)")
    val_clips = load_clips(validation, k, spec, options.decoder)
    agreement = int8_agreement(fp32, int8, val_clips)
    report = Int8Report(len(cal_clips), len(val_clips), source, agreement)
    proto = onnx.load(str(int8))
    write_props(proto, replace(info, precision="int8", extra={"int8": report.to_dict()}))
    onnx.checker.check_model(proto)
    save_atomic(proto, int8)
    return report


def _generated(path: Path, seed: int) -> Path:
    from ispan_cli.video.synthetic import write_synthetic_video

    return write_synthetic_video(path, seconds=3.0, seed=seed)
