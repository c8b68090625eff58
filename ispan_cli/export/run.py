"""The export job: model -> verified ``.onnx`` (and optionally a calibrated int8 copy)."""

from __future__ import annotations

import os
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
from ispan_cli.terminal import visible

Progress = Callable[[str], None]
GENERATED_CALIBRATION = 16
GENERATED_VALIDATION = 8
GENERATED_FLOW_CALIBRATION = 8  # a flow model's: each clip costs K * L flows to compute
GENERATED_FLOW_VALIDATION = 4
GENERATED_VIDEO = "a generated video (3 s, 320x240, H.264)"


@dataclass(frozen=True)
class ExportOptions:
    model: str | None = None
    output: Path | str | None = None  # a str keeps a trailing slash: "a folder"
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


def output_paths(model_id: str, output: Path | str | None, int8: bool) -> tuple[Path, Path | None]:
    """Where the fp32 file (and the int8 copy, ``<stem>.int8.onnx``) go.

    No --output: ``<model name>.onnx`` in the current folder; a folder: ``DIR/model.onnx`` (so
    the folder works as ``--model DIR --runtime onnx``).
    """
    if output is None:
        path = Path(f"{Path(model_id.split('@')[0]).name}.onnx")
    elif Path(output).is_dir() or str(output).endswith(("/", "\\")):
        path = Path(output) / ONNX_FILE
    elif Path(output).suffix.lower() != ".onnx":
        raise UsageError(f"--output {output} must end in .onnx, or be a folder")
    else:
        path = Path(output)
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
    if options.output is not None:  # a path that cannot be written: one error before the load
        _writable(*output_paths("", options.output, options.int8))
    # a registry architecture gives a random-weight graph, for speed work only
    loaded = load_model(options.model, device="cpu", allow_registry=True)
    model, spec = loaded.model, loaded.preprocessing
    flow = loaded.flow  # a flow model: int8 calibrates and checks on its flow stacks
    if options.int8 and flow is not None:
        from ispan_cli.flow.methods import create_method

        create_method(flow.method)  # a method this machine cannot run: one error before work
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
    report = None
    # Exported, verified and quantized under a temporary name in the output's folder; renamed
    # only when all of it passed: a failed verification or a bad video never removes or
    # replaces the previous file, and an unverified file never gets the final name.
    _writable(path, int8_path)
    with (
        exclusive(path),
        atomic_path(path) as staged,
        tempfile.TemporaryDirectory(prefix="ispan-export-") as tmp,
    ):
        # int8's clips first: calibration material that cannot be made is an error before the
        # export and its verification have taken their time
        inputs = _int8_inputs(info, spec, flow, options, Path(tmp), say) if options.int8 else None
        say(f"exporting {loaded.identity.id} to {path} (opset {options.opset})")
        export_onnx(model, staged, info, options.opset)
        if options.verify:
            video = options.verify_video or _generated(Path(tmp) / "verify.mp4", seed=7)
            say(f"verifying against PyTorch on {options.verify_video or GENERATED_VIDEO}")
            report = _verify(model, staged, path, video, spec, options)
            if options.verify_video is None:
                report = replace(report, video=GENERATED_VIDEO)
        int8_report = None
        if inputs is not None and int8_path is not None:
            int8_report = _int8(staged, int8_path, info, inputs, say)
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


def _writable(path: Path, int8_path: Path | None) -> None:
    """Creates the output's folder (missing folders are made) and checks that the files can be
    written there; else one error line saying what to change."""
    from ispan_cli.outputs import check_output_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--output {visible(path)}: cannot create the folder {visible(path.parent)} "
            f"({exc.strerror}); choose a writable place"
        ) from None
    for target in (path, int8_path):
        if target is not None:
            check_output_file(target)
    try:  # permission bits do not tell root (or a read-only mount seen as root) everything
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise UsageError(
            f"--output {visible(path)}: cannot write in {visible(path.parent)} ({exc.strerror}); "
            "choose a writable place"
        ) from None
    os.close(fd)
    os.unlink(probe)


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


@dataclass(frozen=True)
class _Int8Inputs:
    calibration: list  # model inputs, (1, K, C, S, S) each
    validation: list
    source: str  # Int8Report.validation_source


def _int8_inputs(info, spec, flow, options: ExportOptions, tmp: Path, say) -> _Int8Inputs:
    """The calibration and validation inputs: RGB clips, or a flow model's flow stacks."""
    from ispan_cli.export.quantize import calibration_videos, model_inputs, split_calibration

    k = info.num_segments
    if options.calibration is not None:
        calibration, held_out = split_calibration(calibration_videos(options.calibration))
        source = "held-out" if held_out else "calibration"
        validation = held_out or calibration
        where = f"--calibration {options.calibration}"
    else:
        from ispan_cli.video.synthetic import write_synthetic_video

        # fewer for a flow model: a clip costs K * L flows (TV-L1 at 320x240: 1-3 CPU s each)
        n_cal, n_val = (
            (GENERATED_CALIBRATION, GENERATED_VALIDATION)
            if flow is None
            else (GENERATED_FLOW_CALIBRATION, GENERATED_FLOW_VALIDATION)
        )
        say(f"generating {n_cal} calibration and {n_val} validation clips")
        calibration = [
            write_synthetic_video(tmp / f"cal{i:03d}.mp4", 3.0, seed=i) for i in range(n_cal)
        ]
        validation = [
            write_synthetic_video(tmp / f"val{i:03d}.mp4", 3.0, seed=1000 + i) for i in range(n_val)
        ]
        source = "generated"
        where = "the generated clips"

    def made(what: str):
        if flow is None:
            return None
        say(f"computing {flow.method} flow of the {what} (up to {k * flow.length} flows a clip)")
        return lambda n, total: say(f"  {what}: {n}/{total}")

    say(f"reading {len(calibration)} calibration and {len(validation)} {source} clip(s)")
    cal = model_inputs(calibration, k, spec, options.decoder, made("calibration clips"), flow)
    cal_clips = cal.require(len(calibration), where)
    val = model_inputs(validation, k, spec, options.decoder, made(f"{source} clips"), flow)
    val_clips = val.require(len(validation), f"{where} (to compare int8 with fp32 on)")
    return _Int8Inputs(cal_clips, val_clips, source)


def _int8(fp32: Path, int8: Path, info, inputs: _Int8Inputs, say) -> Int8Report:
    import onnx

    from ispan_cli.export.graph import save_atomic
    from ispan_cli.export.quantize import int8_agreement, quantize_int8
    from ispan_cli.runtime.onnx_format import write_props

    say(f"calibrating int8 on {len(inputs.calibration)} clip(s)")
    quantize_int8(fp32, int8, inputs.calibration)
    say(f"comparing int8 with fp32 on {len(inputs.validation)} {inputs.source} clip(s)")
    agreement = int8_agreement(fp32, int8, inputs.validation)
    report = Int8Report(len(inputs.calibration), len(inputs.validation), inputs.source, agreement)
    proto = onnx.load(str(int8))
    write_props(proto, replace(info, precision="int8", extra={"int8": report.to_dict()}))
    onnx.checker.check_model(proto)
    save_atomic(proto, int8)
    return report


def _generated(path: Path, seed: int) -> Path:
    from ispan_cli.video.synthetic import write_synthetic_video

    return write_synthetic_video(path, seconds=3.0, seed=seed)
