"""``ispan visualize``: the model's attention over the sampled frames, as a video and data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Decoder,
    DecoderOpt,
    DeviceOpt,
    FormatOpt,
    ModelOpt,
    OutputFormat,
    Runtime,
    RuntimeOpt,
    SegmentsOpt,
    StreamOpt,
    TimeoutOpt,
)
from ispan_cli.viz.colormaps import Colormap


def visualize(
    video: Annotated[Path, typer.Argument(help="The video to explain.", show_default=False)],
    model: ModelOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="MP4 to write. Default: ./<video name>.attention.mp4.",
            show_default=False,
        ),
    ] = None,
    runtime: RuntimeOpt = Runtime.torch,
    device: DeviceOpt = "auto",
    segments: SegmentsOpt = None,
    level: Annotated[
        str,
        typer.Option(
            "--level",
            help="Which map: fused (the model's attention), a pyramid level index (that "
            "level's own scores), or all (side by side).",
        ),
    ] = "fused",
    alpha: Annotated[
        float, typer.Option("--alpha", min=0.0, max=1.0, help="Heatmap opacity.")
    ] = 0.5,
    colormap: Annotated[
        Colormap, typer.Option("--colormap", case_sensitive=False, help="Heatmap colours.")
    ] = Colormap.turbo,
    topk: Annotated[int, typer.Option("--topk", "-k", min=1, help="Classes drawn.")] = 3,
    fps: Annotated[
        float, typer.Option("--fps", help="Rendered frames per second of the output video.")
    ] = 2.0,
    short_side: Annotated[
        int,
        typer.Option(
            "--short-side",
            min=0,
            help="Scale rendered frames down to this short side (0: original size).",
        ),
    ] = 480,
    maps_out: Annotated[
        Path | None,
        typer.Option(
            "--maps-out",
            help="Write the raw maps and frame data to this .npz file.",
            show_default=False,
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png", help="Write a contact sheet of the rendered frames (PNG).", show_default=False
        ),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            help="Render a long video window by window (seconds, K frames each).",
            show_default=False,
        ),
    ] = None,
    stride: Annotated[
        float | None,
        typer.Option(
            "--stride", help="Seconds between windows (default: --window).", show_default=False
        ),
    ] = None,
    decoder: DecoderOpt = Decoder.auto,
    stream: StreamOpt = None,
    timeout: TimeoutOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Render the attention heatmaps of a video's sampled frames, with the top classes.

    Each output frame is one sampled frame with the attention the model put on it blended over
    the model's input crop, the top-k classes, and each segment's share of the attention. The
    MP4 is H.264 with the input's aspect ratio. Works with --runtime onnx on a file exported
    with `ispan export --onnx --with-attention`.
    """
    from rich.console import Console

    from ispan_cli.hub import hub_timeout
    from ispan_cli.viz.run import VisualizeOptions, check_options, run_visualize
    from ispan_cli.viz.runner import load_runner

    err = Console(stderr=True)
    options = VisualizeOptions(
        video=video,
        output=output,
        segments=segments,
        level=level,
        alpha=alpha,
        colormap=colormap.value,
        topk=topk,
        fps=fps,
        short_side=short_side or None,
        maps_out=maps_out,
        png=png,
        window=window,
        stride=stride,
        decoder=decoder.value,
        stream=stream,
    )
    from ispan_cli.video.decoder import check_video_path

    check_video_path(video)
    check_options(options)  # bad values and unwritable or clashing outputs, before the model
    with hub_timeout(timeout):
        runner = load_runner(model, runtime.value, device)
    from ispan_cli.terminal import markup

    err.print(
        f"[dim]model {markup(runner.predictor.identity.id)} ({runner.predictor.identity.source}) "
        f"on {runner.predictor.device}, {runner.predictor.runtime}[/dim]",
        highlight=False,
    )
    result = run_visualize(runner, options)
    emit(result, fmt, lambda r: _render(Console(), r))


def _render(console, result) -> None:
    from rich.table import Table

    from ispan_cli.terminal import markup, text

    console.print(
        f"wrote {markup(result.output)} ({result.codec}, {result.width}x{result.height}, "
        f"{result.frames} frames at {result.fps:g} fps)",
        highlight=False,
    )
    for path, what in ((result.maps_out, "maps"), (result.png, "contact sheet")):
        if path is not None:
            console.print(f"wrote {markup(path)} ({what})", highlight=False)
    table = Table("view", "top class", "score", "attention share per segment (%)")
    for view in result.views[:50]:
        name = f"{view.span[0]:.1f}-{view.span[1]:.1f}s" if view.span else "video"
        top = view.topk[0]
        shares = " ".join(f"{100 * s:.0f}" for s in view.share)
        table.add_row(name, text(top["label"]), f"{top['score']:.3f}", shares)
    console.print(table)
    if len(result.views) > 50:
        console.print(f"... {len(result.views) - 50} more windows (--format json lists all)")
