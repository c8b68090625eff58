"""Opening a file with PyAV: turning FFmpeg's failures into clear errors, choosing the video
stream, and the packet scan.

The scan reads every packet of the video stream without decoding (cheap next to decoding) and
gives the exact frame count, each frame's presentation timestamp and the keyframes, whatever the
container header claims.

Frame index i is the i-th frame the decoder outputs, which is how ffmpeg numbers frames
(``select=eq(n\\,i)``). Where the container stores presentation timestamps (MP4, MKV, WebM,
MPEG-TS...) a frame is found by its timestamp. AVI stores none: FFmpeg makes them up from the
packet order, and they are wrong for reordered frames (H.264 with B-frames: frame 7's pixels
carry frame 6's timestamp) and for MPEG-4 part 2 "packed bitstreams" (XviD/DivX with B-frames,
most of UCF101 and HMDB51: a P and a B frame share one packet and a 6-byte "N-VOP" placeholder
follows). There, and in raw streams without timestamps, frames are counted in output order
instead (``Scan.sequential``).

Remote MP4/MOV files can skip the scan (which would download them whole): :func:`header_scan`
builds the same index from the ``moov`` sample tables where the header can be trusted for it,
and the reader checks every decoded frame against it (see ``video/remote.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from ispan_cli.limits import MAX_FRAME_PIXELS_ENV, max_frame_pixels
from ispan_cli.video.errors import (
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoError,
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


def video_streams(container: av.container.InputContainer) -> list[av.video.VideoStream]:
    """The real video streams (cover pictures in audio files do not count)."""
    return [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]


def best_stream_score(stream: av.video.VideoStream) -> int:
    """ffmpeg's automatic choice of a video stream (fftools, ``map_auto_video``): the largest
    picture, with 5,000,000 pixels' worth of preference for the default disposition."""
    ctx = stream.codec_context
    area = (ctx.width or 0) * (ctx.height or 0)
    return area + 5_000_000 * bool(stream.disposition & av.stream.Disposition.default)


def video_stream(
    container: av.container.InputContainer, path: Path, index: int | None = None
) -> av.video.VideoStream:
    """The video stream ffmpeg would choose, or container stream ``index`` (``--stream``)."""
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        kind = fmt.removesuffix("_pipe")
        raise NotAVideoError(f"{path} is a still image ({kind}), not a video")
    streams = video_streams(container)
    if not streams:
        kinds = sorted(
            {f"{s.type}: {s.codec_context.name}" for s in container.streams if s.codec_context}
        )
        found = f" (it holds {', '.join(kinds)})" if kinds else ""
        raise NoVideoStreamError(f"{path} has no video stream{found}; give a file with video")
    if index is None:
        # max() keeps the first of equal scores: the lowest index, as ffmpeg does
        return max(streams, key=best_stream_score)
    for stream in streams:
        if stream.index == index:
            return stream
    valid = ", ".join(str(s.index) for s in streams)
    raise NoVideoStreamError(
        f"{path} has no video stream {index}; its video streams are: {valid} (see ispan probe)"
    )


def frame_limit_text() -> str:
    """The frame size limit, for a message."""
    return f"the frame limit of {max_frame_pixels():,} pixels ({MAX_FRAME_PIXELS_ENV})"


def check_frame_size(stream: av.video.VideoStream, path: Path) -> int:
    """Raises VideoError when the stream's frames are over the pixel limit; returns the limit."""
    limit = max_frame_pixels()
    ctx = stream.codec_context
    width, height = ctx.width or 0, ctx.height or 0
    if width * height > limit:
        raise VideoError(
            f"{path} has {width}x{height} frames ({width * height / 1e6:.0f} megapixels), over "
            f"{frame_limit_text()}: one frame would take {width * height * 3 / 2**20:,.0f} MiB "
            f"as RGB; scale the video down first (e.g. ffmpeg -i IN -vf scale=-2:2160 OUT), or "
            f"set {MAX_FRAME_PIXELS_ENV} to a larger number of pixels if the memory is there"
        )
    return limit


@dataclass(frozen=True)
class Scan:
    """What reading all packets of the video stream found."""

    index: FrameIndex
    damaged_packets: int
    read_error: str | None  # the demuxer stopped early (a file cut short mid-packet)
    # No stored presentation timestamps (AVI, raw streams): frames are numbered in the order
    # the decoder outputs them; ``index.pts`` are decoding timestamps, for the frame times.
    sequential: bool
    # sequential only: keyframe index -> the decoding timestamp the demuxer seeks to for it;
    # None: the demuxer cannot seek (no timestamps), every fetch decodes from the start.
    seek_ts: dict[int, int] | None = None
    # Built from the container's header (:func:`header_scan`) rather than the packets: each
    # decoded frame is checked against it, and one that does not fit calls for the real scan.
    from_header: bool = False

    @property
    def seekable(self) -> bool:
        return not self.sequential or self.seek_ts is not None


# Containers whose timestamps FFmpeg derives from the packet order instead of reading them.
NO_STORED_PTS = ("avi",)
# The most frames an open GOP shows before its keyframe (B-frames decoded after it).
MAX_LEADING = 16


def scan_packets(container: av.container.InputContainer, stream: av.video.VideoStream) -> Scan:
    """Reads all of ``stream``'s packets (no decoding) into a FrameIndex; leaves the container
    at its end (seek or reopen before decoding)."""
    for other in container.streams:
        if other.index != stream.index:
            other.discard = av.stream.Discard.all
    pts: list[int | None] = []
    dts: list[int | None] = []
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
            pts.append(packet.pts)
            dts.append(packet.dts)
            keys.append(bool(packet.is_keyframe))
    except (av.error.FFmpegError, OSError) as exc:
        error = _reason(exc)
    if container.format.name not in NO_STORED_PTS and all(p is not None for p in pts):
        index = FrameIndex.from_packets(pts, keys, stream.time_base)  # type: ignore[arg-type]
        return Scan(index, damaged, error, sequential=False)
    n = len(dts)
    stamps = np.array([-1 if d is None else d for d in dts], dtype=np.int64)
    if n and None not in dts and bool(np.all(np.diff(stamps) > 0)):
        seek_ts = _keyframe_positions(pts, dts, keys)  # type: ignore[arg-type]
        flags = np.zeros(n, dtype=bool)
        flags[list(seek_ts)] = True
        return Scan(FrameIndex(stamps, flags, stream.time_base), damaged, error, True, seek_ts)
    # Raw elementary streams have no timestamps at all: number frames at the nominal rate,
    # and never seek (seeking needs timestamps).
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    index = FrameIndex(np.arange(n, dtype=np.int64), np.arange(n) == 0, 1 / rate)
    return Scan(index, damaged, error, sequential=True)


# Containers whose header lists every sample (decoding time, size, sync flag) before the first
# packet: the MP4/MOV sample tables (stts, stsz, stss in ``moov``), which FFmpeg reads whole at
# open, by range requests where ``moov`` is at the end.
HEADER_INDEXED = ("mov",)


def header_scan(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> tuple[Scan | None, str]:
    """The frame index from an MP4/MOV header alone (no packet read), or None and why not.

    The header gives every frame's decoding time and sync flag, not its presentation time. It
    is trusted where the presentation times follow from the decoding times: decoding times
    evenly spaced (constant frame rate: a reordered frame is shown on the same grid), or no
    reordering (``has_b_frames`` 0: frames are shown in decoding order, variable rate or not).
    Frame i then shows at ``start_time + dts[i] - dts[0]``, the frame count is the sample
    count, and a keyframe is shown where it is decoded: right for a closed GOP; an open GOP
    shows it a few frames later, so a seek lands late (the reader seeks further back, as for
    any late landing) or outputs a frame before the keyframe (the reader then scans). A reader
    checks each decoded frame against it.
    """
    family = container.format.name.split(",")[0]
    if family not in HEADER_INDEXED:
        if family in NO_STORED_PTS:
            return None, f"{family.upper()} stores no presentation timestamps"
        return None, f"its container ({family}) has no frame index in its header"
    n = stream.frames
    entries = stream.index_entries
    if not n or len(entries) != n:
        return None, "its header gives no frame count (a fragmented MP4?)"
    dts = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=bool)
    for i, entry in enumerate(entries):
        if entry.is_discard or entry.size <= 0:
            # an edit list that starts mid-GOP, or empty samples: the packets tell which count
            return None, "its edit list or empty samples leave frames out"
        dts[i], keys[i] = entry.timestamp, entry.is_keyframe
    steps = np.diff(dts)
    if not np.all(steps > 0) or stream.start_time is None:
        return None, "its decoding times do not increase"
    if len(steps) and not np.all(steps == steps[0]) and stream.codec_context.has_b_frames:
        return None, "it has a variable frame rate and reordered (B-)frames"
    pts = dts + (stream.start_time - dts[0])
    index = FrameIndex(pts, keys, stream.time_base)
    return Scan(index, 0, None, sequential=False, from_header=True), ""


def _keyframe_positions(pts: list[int | None], dts: list[int], keys: list[bool]) -> dict[int, int]:
    """Where each keyframe is shown (its output position) -> its decoding timestamp.

    One packet is one output frame (an N-VOP placeholder outputs the frame packed before it),
    so a keyframe decoded at position d is shown at d plus the frames of an open GOP that are
    decoded after it but shown before it; a decoder drops those after a seek. FFmpeg's parser
    estimates each packet's presentation time from that structure (the pts it gives AVI
    packets), which tells how many there are: a keyframe's pts runs ahead of its position by
    exactly that many. Closed GOPs (XviD's and x264's defaults) have none.
    """
    first = pts[0]
    out: dict[int, int] = {}
    for d, (p, key) in enumerate(zip(pts, keys, strict=True)):
        if not key:
            continue
        lead = 0 if p is None or first is None else (p - first) - d
        out[d + lead if 0 <= lead <= MAX_LEADING and d + lead < len(dts) else d] = dts[d]
    out.setdefault(0, dts[0])  # decoding always starts somewhere
    return out


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
