"""``ispan frames VIDEO --segments K``: the frames a K-segment model sees, and when they are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Decoder,
    DecoderOpt,
    FormatOpt,
    OutputFormat,
    StreamOpt,
)
from ispan_cli.limits import MAX_SEGMENTS


def frames(
    video: Annotated[
        Path, typer.Argument(help="Video file to sample.", show_default=False, readable=False)
    ],
    segments: Annotated[
        int,
        typer.Option(
            "--segments",
            "-s",
            min=1,
            max=MAX_SEGMENTS,
            help="Number of equal segments (K, at most 1024); the centre frame of each is "
            "sampled. Give the --segments you classify with (a model's own K: `ispan models "
            "info MODEL`; the bundled models use 8).",
        ),
    ] = 8,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write frame_<index>.png files into."),
    ] = None,
    short_side: Annotated[
        int | None,
        typer.Option(
            "--short-side",
            min=1,
            max=8192,
            help="With --out: scale the PNG files so the shorter side is N pixels (at most "
            "8192). Default: the video's own size.",
            show_default=False,
        ),
    ] = None,
    repeat: Annotated[
        bool,
        typer.Option(
            "--repeat/--no-repeat",
            help="When the video has fewer frames than segments, repeat frames (and say so) "
            "instead of failing.",
        ),
    ] = True,
    decoder: DecoderOpt = Decoder.auto,
    stream: StreamOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Show the frames a K-segment model sees: index and timestamp of each.

    Samples K equal segments over the whole video and takes the centre frame of each (the test
    protocol classify uses). With --out, writes them as PNG files named by frame index.
    """
    from ispan_cli.terminal import one_line
    from ispan_cli.video import TSNSampler, sample_video, save_frames
    from ispan_cli.video import probe as probe_video
    from ispan_cli.video.errors import VideoTooShortError
    from ispan_cli.video.extract import sample_indices

    sampler = TSNSampler(segments, allow_repeat=repeat)
    files = None
    if out is not None:
        _make_folder(out)  # before any decoding: a folder that cannot be made costs nothing
    try:
        if out is None:  # indices and times only: no frame is decoded beyond the first
            info, sampling = sample_indices(video, sampler, decoder.value, stream)
        else:
            sampled = sample_video(video, sampler, decoder.value, short_side, stream)
            files = save_frames(sampled, out)
            info, sampling = sampled.info, sampled.sampling
    except VideoTooShortError:  # the sampler's advice, in this command's options
        n = probe_video(video, decoder.value, stream).num_frames
        raise VideoTooShortError(
            f"{video} has too few frames ({n}) for {segments} segments without repeating "
            f"any; give --segments {n} or fewer, or drop --no-repeat (frames are then "
            "repeated and the output says so)"
        ) from None
    note = (
        f"{info.path} has {info.num_frames} frame(s), fewer than {segments} segments: frames "
        "were repeated in temporal order"
        if sampling.repeated
        else None
    )
    rows = [
        {
            "segment": k,
            "index": int(index),
            "timestamp": round(float(t), 6),
            "file": str(files[k]) if files else None,
        }
        for k, (index, t) in enumerate(
            zip(sampling.indices[0], sampling.timestamps[0], strict=True)
        )
    ]
    for warning in info.warnings:
        typer.echo(f"warning: {one_line(warning)}", err=True)
    payload = {
        "video": info.path,
        "decoder": info.decoder,
        "num_frames": info.num_frames,
        "duration": info.duration,
        "fps": info.fps,
        "segments": segments,
        "method": sampling.method,
        "repeated": sampling.repeated,
        "note": note,
        "truncated": info.truncated,
        "warnings": list(info.warnings),
        "frames": rows,
    }
    emit(payload, fmt, lambda _: _render(info, rows, note, out))


def _make_folder(out: Path) -> None:
    """--out as a folder this user can write PNG files into, created if missing."""
    import errno
    import os

    from ispan_cli.errors import UsageError
    from ispan_cli.terminal import visible

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {visible(out)} exists and is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = (
            "a part of its path is a file, not a folder"
            if exc.errno == errno.ENOTDIR
            else (exc.strerror or str(exc)).lower()
        )
        raise UsageError(
            f"--out {visible(out)} cannot be created ({why}); choose another --out"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {visible(out)} is not writable by this user; choose another --out")


def _render(info, rows: list[dict], note: str | None, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import one_line, text

    console = Console()
    title = (
        f"{len(rows)} segments of {info.path} ({info.num_frames} frames, "
        f"{info.duration:.2f} s, {info.fps:.2f} fps)"
    )
    table = Table(title=text(title))
    for col, justify in (("segment", "right"), ("frame", "right"), ("time (s)", "right")):
        table.add_column(col, justify=justify)
    if out is not None:
        table.add_column("file")
    for row in rows:
        cells = [str(row["segment"]), str(row["index"]), f"{row['timestamp']:.3f}"]
        if out is not None:
            cells.append(text(Path(row["file"]).name))
        table.add_row(*cells)
    console.print(table)
    if note:
        console.print(f"note: {one_line(note)}", markup=False)
    if out is not None:
        count = len({r["index"] for r in rows})
        console.print(f"wrote {count} PNG file(s) to {one_line(out)}", markup=False)
