"""``ispan data``: write the synthetic dataset as real video files; check a dataset's videos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Decoder,
    DecoderOpt,
    FormatOpt,
    ModelOpt,
    OutputFormat,
)
from ispan_cli.commands.train import DatasetName
from ispan_cli.limits import MAX_WORKERS

app = typer.Typer(
    help="Datasets: write the synthetic dataset; check that videos decode.", no_args_is_help=True
)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder to write into.")],
    train: Annotated[int, typer.Option("--train", min=0, help="Training clips.")] = 500,
    val: Annotated[int, typer.Option("--val", min=0, help="Validation clips.")] = 100,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Data seed (= --split of the on-the-fly synthetic dataset)."),
    ] = 1,
) -> None:
    """Write synthetic clips as OUT/{train,val}/<class>/*.mp4 (a `folder` dataset) and
    OUT/boxes.jsonl (the target's box in every frame)."""
    from rich.progress import Progress

    from ispan_cli.data.synth_writer import write_synthetic

    with Progress(transient=True, console=_console()) as bar:
        task = bar.add_task("writing", total=train + val)
        counts = write_synthetic(
            out, train, val, seed, lambda done, _total: bar.update(task, completed=done)
        )
    typer.echo(
        f"wrote {counts['train']} training and {counts['val']} validation clips to {out}", err=True
    )


@app.command("check")
def check(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Video files, folders (searched recursively for videos) or list files (.txt, "
            ".csv, .lst: the first field of each line, relative to the list's folder).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        DatasetName | None,
        typer.Option(
            "--dataset",
            help="Check a dataset's listed training and test videos instead (any layout "
            "`ispan train` reads; missing ones count as failures).",
            show_default=False,
        ),
    ] = None,
    data_root: Annotated[
        str | None, typer.Option("--data-root", help="Folder holding the dataset.")
    ] = None,
    split: Annotated[
        int, typer.Option("--split", min=1, max=3, help="Official split 1, 2 or 3.")
    ] = 1,
    model: ModelOpt = None,
    segments: Annotated[
        int | None,
        typer.Option(
            "--segments",
            "-s",
            min=1,
            help="K: decode the K TSN segment frames training and evaluation read, and require "
            "at least K frames. Default: the model's own K.",
            show_default=False,
        ),
    ] = None,
    decoder: DecoderOpt = Decoder.auto,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            max=MAX_WORKERS,
            help="Data-loader processes decoding in parallel; 0 decodes in this process. "
            "Default: the usable CPU cores.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the failing files there, one path per line (e.g. bad.txt).",
            show_default=False,
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="JSON-lines file of results, reused while a file's size and mtime (and K and "
            "the decoder) are unchanged; `ispan train` keeps one in its run folder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Decode every video the way training and evaluation would, and report each one that
    fails with its reason: missing, unreadable, not a video, truncated, too short for K, a
    decode error, or one that PyAV cannot read but --decoder opencv can.

    Exit status 1 when any file fails, 0 when all can be used.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ispan_cli.data.check import DataCheckOptions, run_data_check
    from ispan_cli.runtime.loading import skip_demo_note

    # the default model gives only K and the frame size here: its labels (what the note is
    # about, that they are synthetic shapes) play no part in checking videos
    skip_demo_note()
    options = DataCheckOptions(
        paths=tuple(paths or ()),
        dataset=dataset.value if dataset else None,
        data_root=data_root,
        split=split,
        model=model,
        segments=segments,
        decoder=decoder.value,
        workers=_usable_cores() if workers is None else workers,
        cache=str(cache) if cache else None,
    )
    columns = (
        TextColumn("checking videos"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=_console()) as bar:
        task = bar.add_task("check", total=None)
        report = run_data_check(
            options, lambda done, total: bar.update(task, completed=done, total=total)
        )
    if out is not None:
        from ispan_cli.model_folder import atomic_write_text

        atomic_write_text(out, "".join(f"{r.path}\n" for r in report.failed))
    emit(report, fmt, lambda r: _render(r, out))
    if report.failed:
        raise typer.Exit(1)


def _render(report, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.data.check import REASONS
    from ispan_cli.terminal import one_line
    from ispan_cli.terminal import text as Text  # file names and messages: shown, not obeyed

    console = Console()
    if report.failed:
        table = Table("file", "reason", "message", title="videos that cannot be used")
        for r in report.failed:
            # the file column names the file: its message need not repeat it
            message = r.message.removeprefix(r.path).lstrip(": ") or r.message
            # file names and decoder messages are data, never rich markup
            table.add_row(
                Text(r.path), Text(REASONS.get(r.reason, r.reason)), Text(one_line(message))
            )
        console.print(table)
    for r in report.warned:
        console.print(Text(one_line(f"warning: {r.path}: {'; '.join(r.warnings)}")))
    for note in report.notes:
        console.print(Text(note))
    d = report.to_dict()
    speed = f", {d['videos_per_s']:.1f} videos/s" if d["videos_per_s"] else ""
    cached = f", {d['cached']} from the cache" if d["cached"] else ""
    line = (
        f"{d['files']} video{'' if d['files'] == 1 else 's'} checked (K={d['segments']}, "
        f"decoder {d['decoder']}, "
        f"{d['workers']} workers{cached}) in {d['seconds']:.1f} s{speed}: {d['ok']} ok"
    )
    if d["failed"]:
        reasons = ", ".join(f"{n} {REASONS.get(k, k)}" for k, n in d["by_reason"].items())
        line += f", {d['failed']} failed ({reasons})"
    if out is not None:
        line += f"; failing files listed in {out}"
    console.print(Text(line))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _console():
    from rich.console import Console

    return Console(stderr=True)
