"""``ispan flow extract``: optical flow JPEGs for two-stream (RGB + flow) models."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import Decoder, DecoderOpt, FormatOpt, OutputFormat
from ispan_cli.commands.train import DatasetName
from ispan_cli.limits import MAX_WORKERS

app = typer.Typer(
    help="Optical flow for two-stream models: extract TV-L1, DIS or RAFT flow as JPEGs.",
    no_args_is_help=True,
)


class FlowMethodName(str, Enum):
    tvl1 = "tvl1"
    dis = "dis"
    raft = "raft"


class FlowLayout(str, Enum):
    rawframes = "rawframes"
    uv = "uv"


@app.command("extract")
def extract(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder to write into (one sub-folder per video).",
            show_default=False,
        ),
    ],
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Video files, folders (searched recursively; sub-folders are kept in the output "
            "names) or list files (.txt, .csv, .lst: the first field of each line).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        DatasetName | None,
        typer.Option(
            "--dataset",
            help="Extract a dataset's listed training and test videos instead; outputs are "
            "named <class>/<video> (MMAction2's rawframes) or by their path under --data-root "
            "(folder, list).",
            show_default=False,
        ),
    ] = None,
    data_root: Annotated[
        str | None, typer.Option("--data-root", help="Folder holding the dataset.")
    ] = None,
    split: Annotated[
        int, typer.Option("--split", min=1, max=3, help="Official split whose lists are read.")
    ] = 1,
    method: Annotated[
        FlowMethodName,
        typer.Option(
            "--method",
            help="tvl1: OpenCV's Dual TV-L1 with its defaults (the TSN standard, slow); dis: "
            "OpenCV's DIS, medium preset (tens of times faster); raft: torchvision's RAFT-large "
            "(needs a CUDA GPU and its weights in torch's hub cache).",
            case_sensitive=False,
        ),
    ] = FlowMethodName.tvl1,
    layout: Annotated[
        FlowLayout,
        typer.Option(
            "--layout",
            help="rawframes: OUT/<video>/flow_x_00001.jpg, flow_y_00001.jpg (MMAction2, "
            "dense_flow); uv: OUT/u/<video>/frame000001.jpg and OUT/v/<video>/... (the shared "
            "UCF101 TV-L1 archives).",
            case_sensitive=False,
        ),
    ] = FlowLayout.rawframes,
    bound: Annotated[
        float,
        typer.Option(
            "--bound",
            min=0.001,
            help="Clip flow to +-BOUND pixels, then map linearly to 0-255: q = clip(rint(255 * "
            "(v + bound) / (2 * bound)), 0, 255) (dense_flow's formula; zero motion is 128).",
        ),
    ] = 20.0,
    short_side: Annotated[
        int | None,
        typer.Option(
            "--short-side",
            min=8,
            max=8192,
            help="Scale frames so the shorter side is N pixels first. Default: as decoded.",
            show_default=False,
        ),
    ] = None,
    rgb: Annotated[
        bool,
        typer.Option("--rgb", help="Also write the RGB frames as img_00001.jpg (rawframes)."),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=MAX_WORKERS,
            help="Videos extracted at once, in separate processes.",
        ),
    ] = 1,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Extract again videos already finished (by default they are skipped; a video "
            "finished with another method, bound, size or layout is an error).",
        ),
    ] = False,
    device: Annotated[
        str, typer.Option("--device", "-d", help="For raft: auto, cuda or cuda:N.")
    ] = "auto",
    decoder: DecoderOpt = Decoder.auto,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Extract optical flow from every frame pair of each video, as 8-bit JPEGs.

    Flow i is the motion from frame i to frame i+1, so a video of N frames gets N-1 x and y
    images. Each video's folder gets a flow.json (frame size, method and its settings, bound,
    layout), written last: a rerun skips the finished videos and redoes unfinished ones. A video
    that cannot be read is one error: line and the others go on; the exit status is 1 when any
    failed.
    """
    from ispan_cli.flow.batch import FlowOptions, run_flow_extract

    options = FlowOptions(
        out=str(out),
        paths=tuple(paths or ()),
        dataset=dataset.value if dataset else None,
        data_root=data_root,
        split=split,
        method=method.value,
        layout=layout.value,
        bound=bound,
        short_side=short_side,
        rgb=rgb,
        workers=workers,
        decoder=decoder.value,
        overwrite=overwrite,
        device=device,
    )
    report = _run_with_bar(options, run_flow_extract)
    from ispan_cli.terminal import one_line

    for r in report.failed:  # one line per bad video, on stderr, whatever the format
        typer.echo(f"error: {one_line(r.message or r.source)}", err=True)
    emit(report, fmt, _render)
    if report.failed:
        raise typer.Exit(1)


def _run_with_bar(options, run):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"{options.method} flow"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("videos, {task.fields[fps]} frames/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    # off when stderr is not a terminal: rich would still end with a blank line there
    with Progress(
        *columns, transient=True, console=console, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("flow", total=None, fps="-")

        def update(p) -> None:
            fps = f"{p.frames_per_s:.1f}" if p.frames else "-"
            bar.update(task, completed=p.videos_done, total=p.videos, fps=fps)

        return run(options, update)


def _render(report) -> None:
    from rich.console import Console

    from ispan_cli.terminal import text

    d = report.to_dict()
    speed = f", {d['frames_per_s']:.1f} frames/s" if d["frames_per_s"] else ""
    line = (
        f"{d['videos']} video(s), {d['spec']['method']} flow in the {d['spec']['layout']} layout "
        f"under {report.out}: {d['done']} extracted ({d['frames']} frames in "
        f"{d['seconds']:.1f} s{speed}, {d['workers']} worker(s)), {d['skipped']} already "
        f"finished, {d['failed']} failed"
    )
    Console().print(text(line))
