"""Live sources (RTSP/RTMP/UDP streams, cameras): frames in arrival order, with their stream time
and the wall-clock time they arrived.

A live source has no end and no frame index, so nothing here seeks or scans: frames are decoded
as the packets come and handed on one at a time (memory: one frame plus FFmpeg's buffers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np

from ispan_cli.video.preprocess import scaled_size
from ispan_cli.video.pyav_open import check_frame_size, video_stream
from ispan_cli.video.remote import NetworkError, network_error, open_network
from ispan_cli.video.sources import Source, mask_in, network_timeout


def _open(source: Source, timeout: float) -> av.container.InputContainer:
    started = time.monotonic()
    try:
        return open_network(source, timeout)
    except NetworkError as exc:
        # FFmpeg's RTSP client turns a request that got no reply within its ``timeout`` into a
        # bare "Invalid data found" (the missing reply reads as status 0), which says nothing
        # useful; an open that failed that way once the timeout had run out was a timeout.
        waited = time.monotonic() - started
        if (
            source.scheme in ("rtsp", "rtsps")
            and "Invalid data" in str(exc)
            and waited >= 0.9 * timeout
        ):
            raise network_error(source, TimeoutError(), timeout) from None
        raise


@dataclass(frozen=True)
class LiveFrame:
    """One decoded frame: ``time`` seconds from the connection's first frame, ``arrived`` the
    wall clock (time.time()) when it was decoded, ``image`` RGB (H, W, 3) uint8."""

    number: int  # frames since the connection opened
    time: float
    arrived: float
    image: np.ndarray


class LiveReader:
    """An open live source; iterate :meth:`frames`. Use as a context manager, or ``close``."""

    def __init__(
        self, source: Source, timeout: float | None = None, short_side: int | None = None
    ) -> None:
        self.source = source
        self.timeout = network_timeout(timeout)
        self.short_side = short_side
        self._container = _open(source, self.timeout)
        try:
            self._stream = video_stream(self._container, source.display)  # type: ignore[arg-type]
            check_frame_size(self._stream, source.display)  # type: ignore[arg-type]
        except BaseException:
            self._container.close()
            raise
        for other in self._container.streams:
            if other.index != self._stream.index:
                other.discard = av.stream.Discard.all
        # Slice threads only: frame threading holds frames back (one per thread), which is
        # latency a live source does not want.
        self._stream.thread_type = "SLICE"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        # set when a read gives up after ``timeout`` s: the wall clock the silence began
        self.silent_since: float | None = None

    def frames(self) -> Iterator[LiveFrame]:
        """Frames as they arrive; ends when the stream ends; raises NetworkError when it breaks
        (timeout, connection reset)."""
        first: float | None = None
        number = 0
        last = 0.0
        try:
            for frame in self._container.decode(self._stream):
                arrived = time.time()
                t = frame.time
                if t is None:  # no timestamps: number frames at the nominal rate
                    t = number / (self.fps or 25.0)
                if first is None:
                    first = t
                t -= first
                if t < last:  # a timestamp going back (a wrap, a restarted encoder): keep order
                    t = last + 1.0 / (self.fps or 25.0)
                last = t
                yield LiveFrame(number, round(t, 6), arrived, self._rgb(frame))
                number += 1
        except (av.error.FFmpegError, OSError) as exc:
            if isinstance(exc, (TimeoutError, av.error.ExitError)):
                # The last frame or two before the silence come out only now, when the read
                # gives up (an MPEG-TS demuxer holds a frame until the next one starts; UDP has
                # no end to flush it), stamped now: the data stopped ``timeout`` s ago.
                self.silent_since = time.time() - self.timeout
                raise network_error(self.source, exc, self.timeout) from None
            raise NetworkError(
                f"{self.source.display}: the stream broke off after {number} frames "
                f"({mask_in(str(getattr(exc, 'strerror', None) or exc), self.source)})"
            ) from None

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self.short_side is None:
            return frame.to_ndarray(format="rgb24", threads=1)
        width, height = scaled_size(frame.width, frame.height, self.short_side)
        return frame.to_ndarray(
            format="rgb24", width=width, height=height, interpolation="AREA", threads=1
        )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> LiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
