"""Opening a file with PyAV: turning FFmpeg's failures into clear errors, and the packet scan.

The scan reads every packet of the video stream without decoding (cheap next to decoding) and
gives the exact frame count, each frame's presentation timestamp and the keyframes, whatever the
container header claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ispan_cli.video.errors import (
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
)
from ispan_cli.video.frame_index import FrameIndex
from ispan_cli.video.sniff import container_family


def open_container(path: Path) -> av.container.InputContainer:
    """Opens ``path`` for reading, raising a VideoError subclass that says what is wrong."""
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        family = container_family(path)
        if family is not None:
            raise TruncatedVideoError(
                f"{path} ({family} container) cannot be read by FFmpeg ({_reason(exc)}): it is "
                "truncated or damaged, e.g. an interrupted download or recording; fetch or "
                "export it again"
            ) from None
        raise NotAVideoError(
            f"{path} is not a video FFmpeg can read ({_reason(exc)}); check that it is a "
            "video file and not, e.g., a web page or text saved with a video extension"
        ) from None


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.VideoStream:
    """The first real video stream (cover pictures in audio files do not count)."""
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        kind = fmt.removesuffix("_pipe")
        raise NotAVideoError(f"{path} is a still image ({kind}), not a video")
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted(
        {f"{s.type}: {s.codec_context.name}" for s in container.streams if s.codec_context}
    )
    found = f" (it holds {', '.join(kinds)})" if kinds else ""
    raise NoVideoStreamError(f"{path} has no video stream{found}; give a file with video")


@dataclass(frozen=True)
class Scan:
    """What reading all packets of the video stream found."""

    index: FrameIndex
    damaged_packets: int
    read_error: str | None  # the demuxer stopped early (a file cut short mid-packet)
    sequential: bool  # packets carry no timestamps: frames are numbered in decoding order


def scan_packets(container: av.container.InputContainer, stream: av.video.VideoStream) -> Scan:
    """Reads all of ``stream``'s packets (no decoding) into a FrameIndex; leaves the container
    at its end (seek or reopen before decoding)."""
    for other in container.streams:
        if other.index != stream.index:
            other.discard = av.stream.Discard.all
    stamps: list[int | None] = []
    keys: list[bool] = []
    damaged = 0
    error = None
    try:
        for packet in container.demux(stream):
            if not packet.size:  # end-of-stream flush packets and AVI "drop frame" chunks
                continue
            if packet.is_corrupt:
                damaged += 1
                continue
            stamps.append(packet.pts if packet.pts is not None else packet.dts)
            keys.append(bool(packet.is_keyframe))
    except (av.error.FFmpegError, OSError) as exc:
        error = _reason(exc)
    if any(s is None for s in stamps):
        # Raw elementary streams have no timestamps: number frames in decoding order at the
        # nominal rate, and never seek (seeking needs timestamps).
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        n = len(stamps)
        index = FrameIndex.from_packets(range(n), [True] + [False] * (n - 1), 1 / rate)
        return Scan(index, damaged, error, sequential=True)
    index = FrameIndex.from_packets(stamps, keys, stream.time_base)  # type: ignore[arg-type]
    return Scan(index, damaged, error, sequential=False)


def truncation_reasons(scan: Scan, declared: int, container_us: int | None) -> list[str]:
    """Why the file seems to end before its header says it should (empty: it does not).

    declared: the header's frame count (0: none); container_us: the container's duration.
    """
    n = scan.index.num_frames
    reasons = []
    if scan.read_error:
        reasons.append(f"reading stopped early ({scan.read_error})")
    if declared and declared > n:
        reasons.append(f"the header declares {declared} frames but {n} are present")
    container_s = (container_us or 0) / 1e6
    span = scan.index.duration()
    # Matroska has no frame count; its duration covers every stream, so allow some slack
    if not declared and container_s > span + max(1.0, 0.1 * span):
        reasons.append(f"the container says {container_s:.2f} s but frames stop at {span:.2f} s")
    return reasons


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the errno prefix and the repeated path."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).strip() or type(exc).__name__
