"""Writing video: H.264 MP4 (yuv420p, even size, moov atom first) that browsers play.

PyAV's FFmpeg build has libx264; where an encoder cannot be opened the writer falls back to the
next one in the list (MPEG-4 part 2 plays in VLC and most desktop players, not in browsers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from ispan_cli.errors import ISpanError

CODECS = ("libx264", "libopenh264", "mpeg4")


@dataclass(frozen=True)
class WrittenVideo:
    path: Path
    codec: str
    width: int
    height: int
    frames: int


def encoder_available(codec: str, width: int = 64, height: int = 64) -> bool:
    """Whether this FFmpeg build has ``codec`` and can open it for yuv420p at this size."""
    try:
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()
    except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
        return False
    return True


class VideoWriter:
    """Writes RGB frames (H, W, 3) uint8 to ``path``; the first frame fixes the size.

    Odd sizes are padded by one edge pixel (yuv420p needs even sides). ``codec`` is the encoder
    actually used, known after the first frame.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        crf: int = 23,
        codecs: Sequence[str] = CODECS,
        fragmented: bool = False,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        # fragmented: MP4 written as self-contained fragments (a keyframe every 2 s), so a file
        # cut short by a killed run still plays up to its last fragment; browsers play it too
        self.fragmented = fragmented
        self.preset = preset  # libx264's speed/size trade-off
        self.fps = Fraction(str(round(float(fps), 3))).limit_denominator(1001)
        if self.fps <= 0:
            raise ISpanError(f"frame rate must be positive, got {fps}")
        self.crf = crf
        self.codecs = tuple(codecs)
        self.codec: str | None = None
        self.frames = 0
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def _start(self, width: int, height: int) -> None:
        codec = next((c for c in self.codecs if encoder_available(c, width, height)), None)
        if codec is None:
            raise ISpanError(
                f"none of the video encoders {list(self.codecs)} is available in this FFmpeg "
                "build; reinstall PyAV (pip install --force-reinstall av)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fast_start = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        # +faststart puts the index first so a browser can play before downloading it all.
        options = {"movflags": "+faststart"} if fast_start else {}
        if fast_start and self.fragmented:
            options = {"movflags": "+frag_keyframe+empty_moov+default_base_moof"}
        self._container = av.open(str(self.path), "w", options=options)
        opts = {"crf": str(self.crf), "preset": self.preset} if codec == "libx264" else {}
        if self.fragmented:
            # no B-frames: without an edit list (empty_moov) their delay would shift every
            # timestamp by two frames
            opts.update(g=str(max(1, round(2 * float(self.fps)))), bf="0")
        stream = self._container.add_stream(codec, rate=self.fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        self._stream, self.codec, self._size = stream, codec, (width, height)

    def write(self, frame: np.ndarray) -> None:
        """Appends one RGB frame."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ISpanError(f"frames must be uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        even = (w + w % 2, h + h % 2)
        if self._size is None:
            self._start(*even)
        if even != self._size:
            size = f"{self._size[0]}x{self._size[1]}"
            raise ISpanError(f"frame {self.frames} is {w}x{h} but the video is {size}")
        if (w, h) != even:
            frame = np.pad(frame, ((0, even[1] - h), (0, even[0] - w), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = self.frames
        video_frame.time_base = 1 / self.fps
        assert self._container is not None and self._stream is not None
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> WrittenVideo:
        """Flushes the encoder and finishes the file."""
        if self._container is None:
            raise ISpanError(f"no frames were written to {self.path}")
        assert self._stream is not None and self._size is not None and self.codec is not None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return WrittenVideo(self.path, self.codec, self._size[0], self._size[1], self.frames)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._container is None:
            return
        if exc_type is None:
            self.close()
        else:
            self._container.close()
            self._container = None


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    crf: int = 23,
    codecs: Sequence[str] = CODECS,
) -> WrittenVideo:
    """Writes all ``frames`` (RGB uint8) to ``path``; returns what was written."""
    writer = VideoWriter(path, fps, crf, codecs)
    for frame in frames:
        writer.write(frame)
    return writer.close()
