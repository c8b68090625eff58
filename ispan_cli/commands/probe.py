"""``ispan probe VIDEO``: what a video holds, as ispan's decoders see it."""

from __future__ import annotations

from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import Decoder, DecoderOpt, FormatOpt, OutputFormat, StreamOpt


def probe(
    video: Annotated[
        str,  # not Path: a URL's // would be folded
        typer.Argument(help="Video file or URL (http, https, ftp) to inspect.", show_default=False),
    ],
    decoder: DecoderOpt = Decoder.auto,
    stream: StreamOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Describe a video as ispan's decoders see it: duration, frame rate, frames, codec, size.

    Duration, frame rate (constant or variable), frame count (counted, not trusted from the
    header), codec, pixel format, and display size after rotation, of the video stream read;
    with several video streams, lists them all and says which one is used."""
    from ispan_cli.terminal import one_line
    from ispan_cli.video import probe as probe_video

    info = probe_video(video, decoder.value, stream)
    for warning in info.warnings:
        typer.echo(f"warning: {one_line(warning)}", err=True)
    emit(info, fmt, _render)


def _render(info) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import text

    def maybe(value, unknown: str = "unknown") -> str:
        return unknown if value is None else str(value)

    rate = {True: "variable", False: "constant", None: "unknown if variable"}
    declared = (
        "header gives none"
        if info.container_frames is None
        else "header agrees"
        if info.container_frames == info.num_frames
        else f"header says {info.container_frames}"
    )
    size = f"{info.width} x {info.height}"
    if info.rotation:
        size += f" (stored {info.coded_width} x {info.coded_height}, rotated {info.rotation}°)"
    depth = f", {info.bit_depth}-bit" if info.bit_depth else ""
    table = Table(title=text(info.path), show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    rows = [
        ("decoder", info.decoder),
        ("container", info.container),
        ("codec", f"{info.codec} ({maybe(info.pixel_format)}{depth})"),
        ("size", size),
        ("frame rate", f"{info.fps:.3f} fps, {rate[info.variable_frame_rate]}"),
        ("duration", f"{info.duration:.3f} s"),
        ("frames", f"{info.num_frames} counted ({declared})"),
        ("keyframes", maybe(info.keyframes)),
        ("audio", {True: "yes", False: "no", None: "unknown"}[info.has_audio]),
        ("truncated", "yes" if info.truncated else "no"),
    ]
    if len(info.video_streams) > 1:
        for s in info.video_streams:
            used = ", used" if s["index"] == info.stream else f" (--stream {s['index']})"
            default = ", default" if s["default"] else ""
            rows.append(
                (
                    f"video stream {s['index']}",
                    f"{s['codec']} {s['width']} x {s['height']}{default}{used}",
                )
            )
    for key, value in rows:
        table.add_row(key, text(value))  # codec and container names come from the file too
    Console().print(table)
