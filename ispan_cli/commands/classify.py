"""``ispan classify``: top actions of videos, folders, globs or a list on stdin."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.options import (
    BatchSizeOpt,
    Crops,
    CropsOpt,
    Decoder,
    DecoderOpt,
    DeviceOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    Runtime,
    RuntimeOpt,
    SegmentsOpt,
    StreamOpt,
    TimeoutOpt,
    WorkersOpt,
)


class RecordFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def classify(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders (searched recursively), glob patterns, or - to read "
            "paths from standard input, one per line.",
            show_default=False,
        ),
    ],
    model: ModelOpt = None,
    topk: Annotated[int, typer.Option("--topk", "-k", min=1, help="Classes per video.")] = 5,
    segments: SegmentsOpt = None,
    crops: CropsOpt = Crops.one,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    runtime: RuntimeOpt = Runtime.torch,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = 2,
    decoder: DecoderOpt = Decoder.auto,
    stream: StreamOpt = None,
    timeout: TimeoutOpt = None,
    fmt: Annotated[
        RecordFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="Output format. Default: table on a terminal, jsonl when piped, or from the "
            "--output extension.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write records to this file.")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary; errors still print.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first input that fails.")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            help="Timeline mode: classify windows of this many seconds (K frames each), one "
            "record per window, streamed.",
            show_default=False,
        ),
    ] = None,
    stride: Annotated[
        float | None,
        typer.Option(
            "--stride",
            help="Seconds between window starts (default: --window).",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Timeline mode: join adjacent windows with the same top class into segments.",
        ),
    ] = False,
) -> None:
    """Classify the actions in videos and print the top classes with their probabilities.

    Every record names the model (and its revision or weights sha256), the frame indices and
    timestamps that were used, whether frames were repeated (videos shorter than --segments),
    and the decode, preprocess and model times. Failed inputs get a record with an "error"
    field and a line on stderr; the job carries on and exits with status 1.
    """
    from ispan_cli.errors import UsageError
    from ispan_cli.inference.pipeline import ClassifyOptions, run_classify
    from ispan_cli.inference.timeline import merge_windows, run_timeline
    from ispan_cli.runtime.loading import load_predictor

    if window is None and (stride is not None or merge):
        raise UsageError("--stride and --merge need --window SECONDS (timeline mode)")
    if (window is not None and window <= 0) or (stride is not None and stride <= 0):
        raise UsageError("--window and --stride must be positive numbers of seconds")
    record_format = _choose_format(fmt, output)
    outputs = contextlib.ExitStack()
    if output is not None:  # checked and locked (one writer at a time) before the model loads
        from ispan_cli.outputs import check_output_file, exclusive

        check_output_file(output, [p for p in inputs if p != "-"])
        outputs.enter_context(exclusive(output))
    with outputs:
        predictor = load_predictor(model, runtime.value, device, precision.value, timeout=timeout)
        options = ClassifyOptions(
            segments=segments or predictor.num_segments,
            crops=int(crops.value),
            topk=topk,
            decoder=decoder.value,
            stream=stream,
            batch_size=batch_size or (4 if window is None else 1),
            workers=workers,
            fail_fast=fail_fast,
        )
        items = _inputs(inputs)
        if window is None:
            records = run_classify(predictor, items, options)
        else:
            records = run_timeline(predictor, items, options, window, stride or window)
            if merge:
                records = merge_windows(records)
        total = len(items) if isinstance(items, list) and window is None else None
        failed = _write_records(records, record_format, output, quiet, predictor, options, total)
    raise typer.Exit(1 if failed else 0)


def _choose_format(fmt: RecordFormat | None, output: Path | None) -> str:
    if fmt is not None:
        return fmt.value
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        return suffix if suffix in ("json", "jsonl", "csv") else "jsonl"
    return "table" if sys.stdout.isatty() else "jsonl"


def _inputs(inputs: list[str]):
    from ispan_cli.inference.inputs import expand_inputs

    items = expand_inputs(inputs, stdin=sys.stdin)
    # Lists from stdin stream; otherwise expand now so the progress bar knows the total.
    return items if "-" in inputs else list(items)


def _write_records(records, record_format, output, quiet, predictor, options, total) -> int:
    """Writes every record; returns how many inputs failed."""
    from rich.console import Console

    from ispan_cli.terminal import markup

    err = Console(stderr=True)
    if not quiet:
        err.print(
            f"[dim]model {markup(predictor.identity.id)} ({predictor.identity.source}) on "
            f"{predictor.device}, {predictor.runtime} {getattr(predictor, 'precision', '')}, "
            f"{options.segments} segments x {options.crops} crop(s)[/dim]",
            highlight=False,
        )
    with contextlib.ExitStack() as stack:
        stream = sys.stdout
        if output:
            # replaced only once complete: a crash or a kill leaves the previous file as it was
            from ispan_cli.model_folder import atomic_open

            stream = stack.enter_context(atomic_open(output, "w", newline=""))
        failed, count = _stream_records(records, record_format, stream, output, err, quiet, total)
        if count == 0:  # inside the block: an empty run never replaces an earlier output
            from ispan_cli.errors import ISpanError

            raise ISpanError(
                "nothing to classify: the inputs (standard input, folders, glob patterns) gave no "
                "video paths; check them"
            )
    if not quiet:
        err.print(
            f"[dim]{count - failed} of {count} input(s) classified, {failed} failed[/dim]",
            highlight=False,
        )
    return failed


def _stream_records(records, record_format, stream, output, err, quiet, total):
    """Writes the records to ``stream`` as they come; returns (failed, written)."""
    from rich.console import Console

    from ispan_cli.inference.records import RecordWriter
    from ispan_cli.terminal import one_line

    writer = RecordWriter(record_format, stream)
    failed = 0
    with _progress(err, quiet) as progress:
        task = progress.add_task("classifying", total=total)
        for record in records:
            writer.write(record)
            if record.get("error"):
                failed += 1
                message = record["error"]
                if record["input"] not in message:
                    message = f"{record['input']}: {message}"
                progress.console.print(
                    f"error: {one_line(message)}", highlight=False, markup=False, soft_wrap=True
                )
            progress.advance(task)
    writer.close(Console() if not output else Console(file=stream))
    return failed, writer.count


def _progress(console, quiet: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )
