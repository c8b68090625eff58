"""PyAV backend (primary): threaded FFmpeg decoding with an exact, packet-derived frame index.

Fetching follows :func:`ispan_cli.video.frame_index.plan_fetch`: frames that are close together
are reached by decoding forward, far ones by seeking to the preceding keyframe. Only the wanted
frames are converted to RGB, scaled in the same swscale pass when a size is asked for, so memory
holds the wanted frames and the decoder's own few reference frames, whatever the video's length.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import av.error
import numpy as np

from ispan_cli.limits import decode_threads
from ispan_cli.video.errors import TruncatedVideoError, VideoDecodeError, VideoError
from ispan_cli.video.frame_index import FetchRun, plan_fetch
from ispan_cli.video.info import VideoInfo
from ispan_cli.video.preprocess import scaled_size
from ispan_cli.video.pyav_open import (
    MAX_LEADING,
    Scan,
    check_frame_size,
    frame_limit_text,
    open_container,
    scan_packets,
    truncation_reasons,
    video_stream,
    video_streams,
)
from ispan_cli.video.reader import VideoReader


class PyAVReader(VideoReader):
    """Reads frames with PyAV; see the module docstring for the fetch strategy."""

    name = "pyav"

    def __init__(self, path: Path, threads: int = 0, stream: int | None = None) -> None:
        self.path = Path(path)
        self._threads = threads  # 0: FFmpeg picks one thread per core
        self._stream_index = stream  # None: the stream ffmpeg would choose
        self._container: av.container.InputContainer | None = None
        # sequential files: where the last seek landed (a frame index; -1: not on a keyframe;
        # _AWAITING: no packet read yet), until the first frame after it is numbered
        self._landed: int | None = None
        # the keyframe index the last seek went to, until a packet is read after it; and the one
        # whose first read failed (a demuxer that cannot go there, see _retry_seek)
        self._seek_k: int | None = None
        self._failed_seek: int | None = None
        try:
            self._open()
            self._use_scan(self._index_packets())
            self._warnings: list[str] = []
            self._truncated = False
            self._damaged = self._scan.damaged_packets
            self._keep: set[int] | None = None  # frames a fetch still wants; None: decode all
            self._stop = 0  # the last frame of the current fetch run
            self._first: av.VideoFrame | None = None  # frame 0, while the decoder stands on it
            if self._index.num_frames == 0:
                raise TruncatedVideoError(
                    f"{self.path} has a video stream but no frames{self._scan_note()}; the file is "
                    "truncated or empty inside: fetch or export it again"
                )
            # The scan left the demuxer at the end of the file. A fresh demuxer where frames are
            # counted: it starts at frame 0 whatever the first packet's flags say. An index from
            # the header read no packet: the demuxer still stands at the start.
            if not self._scan.from_header:
                self._seek(0, reopen=self._scan.sequential)
            first = self._first_frame()
            # FFmpeg reports the display matrix as counter-clockwise degrees; players turn the
            # picture the other way round, so store the clockwise angle a viewer sees applied.
            self._rotation = round(-first.rotation) % 360
            self._coded = (first.width, first.height)
            self._pix_fmt = first.format.name
            self._bit_depth = first.format.components[0].bits if first.format.components else None
            self._check_truncation()
        except BaseException:
            # nobody else can close a reader that is never returned; closing breaks the
            # container's own cycle with its streams (see close)
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------
    def _index_packets(self) -> Scan:
        """The frame index: every packet of a local file is read (cheap, and exact whatever
        the header claims); a remote MP4 uses its header instead (``video/remote.py``)."""
        assert self._container is not None
        return scan_packets(self._container, self._stream)

    def _use_scan(self, scan: Scan) -> None:
        self._scan = scan
        self._index = scan.index
        self._seekable = scan.seekable
        # sequential: a keyframe's decoding timestamp -> the frame index it is shown at
        self._landings = {ts: k for k, ts in (scan.seek_ts or {}).items()}

    def _rescan(self) -> None:
        """A decoded frame does not fit the header's frame index: read every packet after all,
        as for a local file, and start again from frame 0."""
        self._open()
        assert self._container is not None
        self._use_scan(scan_packets(self._container, self._stream))
        self._damaged = self._scan.damaged_packets
        self._seek(0, reopen=True)

    def _open(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._open_container()
        self._stream = video_stream(self._container, self.path, self._stream_index)
        self._streams = video_streams(self._container)
        for other in self._container.streams:
            if other.index != self._stream.index:
                other.discard = av.stream.Discard.all
        # Refuse frames over the pixel limit before one is decoded: the sizes come from the
        # headers, and a 3 MB file can claim 16000x16000 (768 MB a frame as RGB). FFmpeg's own
        # max_pixels catches a frame that grows later in the stream (MJPEG may change size).
        limit = check_frame_size(self._stream, self.path)
        ctx = self._stream.codec_context
        # set before the first decode, which opens the codec
        ctx.options = {**ctx.options, "max_pixels": str(limit)}
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = decode_threads(ctx.width or 0, ctx.height or 0, self._threads)
        self._start_decoding()
        self._pos = -1
        self._seek_k = OPENED
        self._sought = False  # positioned by a fresh demuxer, not by a seek

    def _open_container(self) -> av.container.InputContainer:
        """The demuxer for this video (a subclass opens URLs, see ``video/remote.py``)."""
        return open_container(self.path)

    def _start_decoding(self) -> None:
        """Frames from where the demuxer stands, by a generator that sees the reader through
        a weak proxy. The reader holds the generator; a strong reference back made a cycle
        (reader -> generator -> its frame -> reader) that only the garbage collector frees,
        so the codec context and FFmpeg's frame threads outlived close(), and a DataLoader
        worker forked meanwhile hung freeing them (a child does not have those threads)."""
        self._frames = type(self)._decode(weakref.proxy(self))

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Called on a weak proxy of the reader, by :meth:`_start_decoding` only."""
        assert self._container is not None
        ctx = self._stream.codec_context
        skipping = False
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError):
                if self._seek_k is not None:  # not one packet since the seek: see _retry_seek
                    self._failed_seek, self._seek_k = self._seek_k, None
                    return
                # The file ends early (truncated): drain what the decoder holds, then stop.
                with contextlib.suppress(av.error.FFmpegError):
                    yield from ctx.decode(None)
                return
            self._seek_k = None
            if self._scan.sequential and packet.is_corrupt:
                continue  # not listed by the scan either: counts stay in step
            if self._landed == _AWAITING and packet.size:  # the first packet after a seek
                self._landed = self._landing(packet)
            # Frames no other frame refers to (most B-frames) need not be decoded unless they
            # are wanted: the decoder drops them unseen, which makes decoding forward to a far
            # frame 2-3x cheaper. The decision is per packet, before it reaches the decoder.
            # Only before the run's last frame: frames after it may be wanted by the next read,
            # which continues from here without a seek.
            # Not where frames are counted in output order: a skipped frame would go uncounted,
            # and a packed packet holds a frame that other packets' frames need.
            skip = False
            if self._keep is not None and not self._scan.sequential:
                i = self._index.lookup_packet(packet)
                skip = i is not None and i < self._stop and i not in self._keep
            if skip != skipping:
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                # A damaged packet: skip it; decoding recovers at the next keyframe.
                self._damaged += 1
                continue
            except av.error.ArgumentError as exc:  # EINVAL: max_pixels refused a frame
                raise VideoDecodeError(
                    f"cannot decode {self.path} ({ctx.name}): {exc}; a frame is larger than "
                    f"{frame_limit_text()} or the data is damaged"
                ) from None
            except av.error.FFmpegError as exc:
                raise VideoDecodeError(
                    f"cannot decode {self.path} ({ctx.name}): {exc}; this FFmpeg build does not "
                    "support the codec or the way this file uses it"
                ) from None
            yield from frames

    def _first_frame(self) -> av.VideoFrame:
        frame = next(self._frames, None)
        if frame is None and self._retry_seek():
            frame = next(self._frames, None)
        if frame is None and self._sought:  # see _seek
            self._seek(0, reopen=True)
            frame = next(self._frames, None)
        if frame is None:
            raise VideoDecodeError(
                f"no frame of {self.path} can be decoded (codec "
                f"{self._stream.codec_context.name}); the data is damaged or the codec is "
                "not supported by this FFmpeg build"
            )
        if self._scan.from_header:
            try:
                self._check_header_start(frame)
            except _Untrusted:
                self._rescan()
                return self._first_frame()
            return frame
        if self._resolve(frame, -1) == 0:
            self._first, self._pos = frame, 0  # kept: a fetch of frame 0 needs no new decode
        else:
            self._seek(0, reopen=True)
        return frame

    def _check_header_start(self, first: av.VideoFrame) -> None:
        """A frame index from the header: the first frames must come out in order with its
        timestamps (this is where a reordered stream it misreads shows first)."""
        last = min(self._index.num_frames, MAX_LEADING) - 1
        frame: av.VideoFrame | None = first
        for i in range(last + 1):
            if i:
                frame = next(self._frames, None)
            if frame is None or frame.pts is None or frame.pts != self._index.pts[i]:
                raise _Untrusted
        self._first, self._pos = first, last  # frame 0 kept: a fetch of it needs no decode

    def _retry_seek(self) -> bool:
        """A read failed right after a seek: whether another way there was set up (a remote
        reader reads a server without range requests in order, see ``video/remote.py``).
        Here: no, it is the end of a damaged file."""
        self._failed_seek = None
        return False

    def _scan_note(self) -> str:
        return f" (reading stopped: {self._scan.read_error})" if self._scan.read_error else ""

    def _check_truncation(self) -> None:
        if self._damaged:
            self._warnings.append(f"{self._damaged} damaged packet(s) were skipped")
        assert self._container is not None
        reasons = truncation_reasons(self._scan, self._stream.frames, self._container.duration)
        if not reasons:
            return
        self._truncated = True
        self._trim_undecodable_tail()
        self._warnings.append(
            f"{self.path} is truncated or its header is wrong: {'; '.join(reasons)}; using the "
            f"{self._index.num_frames} frames that decode"
        )

    def _trim_undecodable_tail(self) -> None:
        """Keeps only frames after the last keyframe that really decode (a cut-short file can
        list packets whose frames never come out)."""
        keys = self._seek_points()
        for k in keys[::-1]:
            try:
                decoded = self._decode_from(int(k))
            except _LostCount:  # seeking is off from now on: count from the start
                k, decoded = 0, self._decode_from(0)
            keep = np.concatenate([np.arange(k), sorted(i for i in decoded if i >= k)])
            if self._scan.sequential:
                # Frames are counted: one lost near the cut shifts the count of the frames
                # shown after it, which are at most the reorder depth from the end.
                keep = keep[: len(keep) - self._reorder_depth()]
            if len(keep) > k:
                self._index = self._index.subset(keep.astype(np.int64))
                self._pos = self._index.num_frames  # drained: the next read seeks
                return
        raise VideoDecodeError(f"no frame of {self.path} can be decoded; the file is damaged")

    def _reorder_depth(self) -> int:
        """How many frames the decoder holds back to put them in presentation order."""
        ctx = self._stream.codec_context
        return int(getattr(ctx, "reorder_depth", 2 * bool(ctx.has_b_frames)))

    def _decode_from(self, k: int) -> set[int]:
        """Indices of the frames that come out decoding from keyframe ``k`` to the end."""
        self._seek(k)
        decoded = set()
        pos = self._pos
        for frame in self._frames:
            i = self._resolve(frame, pos)
            if i is not None:
                decoded.add(i)
                pos = i
        return decoded

    # -- reading -------------------------------------------------------------------------------
    def info(self) -> VideoInfo:
        w, h = self._coded
        disp_w, disp_h = (h, w) if self._rotation in (90, 270) else (w, h)
        rate = self._stream.average_rate
        duration = self._index.duration()
        if self._index.num_frames == 1 and rate:  # no interval to measure: one at the stream's rate
            duration = 1 / float(rate)
        fps = float(rate) if rate else (self._index.num_frames / duration if duration else 0.0)
        assert self._container is not None
        return VideoInfo(
            path=str(self.path),
            decoder=self.name,
            container=self._container.format.name,
            codec=self._stream.codec_context.name,
            pixel_format=self._pix_fmt,
            bit_depth=self._bit_depth,
            width=disp_w,
            height=disp_h,
            coded_width=w,
            coded_height=h,
            rotation=self._rotation,
            fps=round(fps, 6),
            duration=round(duration, 6),
            num_frames=self._index.num_frames,
            container_frames=self._stream.frames or None,
            # frames numbered at the nominal rate (raw streams) say nothing of their timing
            variable_frame_rate=self._index.is_variable_rate() if self._timed() else None,
            keyframes=int(self._index.keyframe.sum()),
            has_audio=bool(self._container.streams.audio),
            truncated=self._truncated,
            warnings=tuple(self._warnings),
            stream=self._stream.index,
            video_streams=tuple(
                {
                    "index": s.index,
                    "codec": s.codec_context.name,
                    "width": s.codec_context.width,
                    "height": s.codec_context.height,
                    "default": bool(s.disposition & av.stream.Disposition.default),
                }
                for s in self._streams
            ),
        )

    def _timed(self) -> bool:
        return self._scan.seekable

    def frame_times(self) -> np.ndarray:
        return self._index.times()

    def read(self, indices: Sequence[int], short_side: int | None = None) -> np.ndarray:
        wanted = [int(i) for i in indices]
        n = self._index.num_frames
        bad = [i for i in wanted if not 0 <= i < n]
        if bad:
            raise VideoError(f"frame index {bad[0]} is outside {self.path} (frames 0..{n - 1})")
        size = self._target_size(short_side)
        try:
            got = self._fetch(wanted, size)
        except _Untrusted:  # the header's frame index was wrong: index the packets, again
            self._rescan()
            got = self._fetch(wanted, size)
        return np.stack([got[i] for i in wanted])

    def _fetch(self, wanted: list[int], size: tuple[int, int] | None) -> dict[int, np.ndarray]:
        got: dict[int, np.ndarray] = {}
        if self._first is not None and 0 in wanted:
            got[0] = self._to_rgb(self._first, size)
        rest = [i for i in wanted if i not in got]
        for run in plan_fetch(rest, self._seek_points(), self._pos):
            self._run(run, got, size)
        missing = sorted(set(wanted) - set(got))
        if missing and self._scan.from_header:
            raise _Untrusted
        if missing:
            raise VideoDecodeError(
                f"frame {missing[0]} of {self.path} could not be decoded ({len(missing)} wanted "
                "frame(s) missing); the file is damaged there"
            )
        return got

    def _target_size(self, short_side: int | None) -> tuple[int, int] | None:
        if short_side is None:
            return None
        w, h = self._coded
        if self._rotation in (90, 270):
            new_h, new_w = scaled_size(h, w, short_side)  # scale the display-oriented size
        else:
            new_w, new_h = scaled_size(w, h, short_side)
        return new_w, new_h

    def _run(self, run: FetchRun, got: dict[int, np.ndarray], size: tuple[int, int] | None) -> None:
        self._first = None  # the decoder moves on from frame 0
        if run.seek_to is not None and not self._seekable and run.seek_to > self._pos:
            # planned before seeking was found impossible (a remote server without ranges):
            # decoding on from here is the way forward
            run = FetchRun(None, run.stop, run.wanted)
        if run.seek_to is not None:
            self._seek(run.seek_to)
        want = set(run.wanted)
        self._keep, self._stop = want - set(got), run.stop
        try:
            self._decode_until(run, want, got, size)
        finally:
            self._keep = None

    def _decode_until(
        self,
        run: FetchRun,
        want: set[int],
        got: dict[int, np.ndarray],
        size: tuple[int, int] | None,
    ) -> None:
        seek_to = run.seek_to
        check = seek_to is not None  # verify where the seek landed

        def back_off() -> bool:
            """The seek landed after the frame we need, or gave no frame (see _seek): one
            keyframe further back, and from the very start (a fresh demuxer) as the last
            resort. Returns whether the new landing is to be checked."""
            nonlocal seek_to
            keys = self._seek_points()
            earlier = keys[keys < (seek_to or 0)]
            if len(earlier):
                seek_to = int(earlier[-1])
                self._seek(seek_to)
                return True
            self._seek(0, reopen=True)
            return False

        while True:
            frame = next(self._frames, None)
            if frame is None and self._retry_seek():
                continue
            if frame is None and check and self._sought:
                check = back_off()
                continue
            if frame is None:
                self._pos = self._index.num_frames  # decoder drained: the next read must seek
                return
            try:
                i = self._resolve(frame, self._pos)
            except _LostCount:
                self._seek(0, reopen=True)
                check = False
                continue
            if i is None:  # e.g. a leading frame that belongs before the seek point
                continue
            if check:
                check = False
                if self._scan.from_header and not frame.key_frame:
                    # The header places a keyframe where it is decoded; an open GOP shows some
                    # frames before it, decoded after it from frames before the seek: here the
                    # decoder output one of those, which the packets' index would have avoided.
                    raise _Untrusted
                pending = want - set(got)
                if pending and i > min(pending):
                    check = back_off()
                    continue
            self._pos = i
            if i in want and i not in got:
                got[i] = self._to_rgb(frame, size)
                if self._keep is not None:
                    self._keep.discard(i)
            if i >= run.stop:
                return

    def _seek_points(self) -> np.ndarray:
        """Frame indices a fetch can start from: the keyframes, or frame 0 alone."""
        if self._seekable:
            return self._index.keyframe_indices()
        return np.zeros(1, dtype=np.int64)

    def _seek(self, k: int, reopen: bool = False) -> None:
        self._first = None
        self._landed = None
        if reopen or not self._seekable:
            self._open()  # a fresh demuxer starts at the first frame on every format
            return
        assert self._container is not None
        try:
            ts = self._scan.seek_ts[k] if self._scan.seek_ts is not None else self._index.pts[k]
            self._container.seek(int(ts), stream=self._stream, backward=True)
        except (av.error.FFmpegError, OSError):
            self._open()  # a file the demuxer cannot seek in: decode forward from the start
            return
        self._start_decoding()
        self._pos = k - 1
        self._seek_k = k
        # MPEG-TS seeks by byte position and can land past the keyframe asked for; with no
        # keyframe after it (a clip of one GOP: x264's default for clips under 10 s) the decoder
        # then gives no frame at all. A seek that gives none goes a keyframe further back, or
        # (from the first) to a fresh demuxer.
        self._sought = True
        if self._scan.sequential:
            self._landed = _AWAITING

    def _landing(self, packet: av.Packet) -> int:
        """Sequential: the frame index decoding restarts at (-1: not a listed keyframe)."""
        k = self._landings.get(packet.dts) if packet.is_keyframe else None
        return -1 if k is None else k

    def _resolve(self, frame: av.VideoFrame, previous: int) -> int | None:
        if not self._scan.sequential:
            if frame.pts is None:
                return previous + 1
            i = self._index.lookup(frame.pts)
            if i is None and self._scan.from_header:
                raise _Untrusted
            return i
        if self._landed is None:
            return previous + 1
        # The first frame after a seek: counting restarts at the keyframe the demuxer landed
        # on, which must also be the first frame out (a closed GOP). Anything else (an open
        # GOP's leading frames, a seek that missed) leaves the count unknown: from now on this
        # file is decoded from the start, which is always right.
        landed, self._landed = self._landed, None
        if landed < 0 or not frame.key_frame:
            self._seekable = False
            raise _LostCount
        return landed

    def _to_rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        # One swscale pass converts and scales. threads=1: a fetch converts a handful of
        # frames, and swscale's per-call thread pool costs more than it saves (measured).
        if size is None:
            rgb = frame.to_ndarray(format="rgb24", threads=1)
        else:
            width, height = size
            rgb = frame.to_ndarray(
                format="rgb24", width=width, height=height, interpolation="AREA", threads=1
            )
        if self._rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=-self._rotation // 90))  # clockwise
        return rgb

    def close(self) -> None:
        # PyAV's container and its streams refer to each other: only close() (which drops the
        # streams) frees them without the garbage collector
        if self._container is not None:
            self._container.close()
            self._container = None

    def __del__(self) -> None:
        # a reader dropped unclosed: its decoder goes now, in this process, not at the next
        # collection (which may run in a forked child, see _start_decoding)
        if getattr(self, "_container", None) is not None:
            with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
                self.close()


_AWAITING = -2
OPENED = -1  # _seek_k of a fresh demuxer: no packet read since it was opened


class _LostCount(Exception):
    """After a seek, the decoder's output cannot be matched to frame indices."""


class _Untrusted(Exception):
    """A decoded frame does not fit the frame index read from the container's header."""
