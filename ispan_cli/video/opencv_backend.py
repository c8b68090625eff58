"""OpenCV backend (fallback): cv2.VideoCapture over OpenCV's own FFmpeg build.

OpenCV exposes no packet timestamps or keyframe flags, so this backend assumes a constant frame
rate (frame i is at i / fps) and reports ``variable_frame_rate`` as unknown; use the PyAV backend
for variable-frame-rate files. Fetching follows the same plan as PyAV: ``grab()`` (decode without
conversion) through near frames, ``CAP_PROP_POS_FRAMES`` (OpenCV seeks to the keyframe before and
decodes forward) for far ones, and colour conversion only for the wanted frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ispan_cli.limits import MAX_FRAME_PIXELS_ENV, max_frame_pixels
from ispan_cli.video.errors import NotAVideoError, TruncatedVideoError, VideoDecodeError, VideoError
from ispan_cli.video.frame_index import FetchRun, plan_fetch
from ispan_cli.video.info import VideoInfo
from ispan_cli.video.preprocess import resize_short_side
from ispan_cli.video.reader import VideoReader
from ispan_cli.video.sniff import MPEG_TS, container_family, image_kind

# Library code does not print: OpenCV and its FFmpeg would write warnings such as "moov atom not
# found" straight to stderr; problems reach the user as VideoErrors instead. setdefault leaves a
# user's own setting alone; the FFmpeg level is read when the first capture is opened.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# OpenCV's seek decodes from the previous keyframe, which it does not tell us: count a seek as
# this many frames so runs of nearby frames are grabbed in one pass.
OPENCV_SEEK_COST = 32


class OpenCVReader(VideoReader):
    """Reads frames with cv2.VideoCapture; see the module docstring for its limits."""

    name = "opencv"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cap = self._open()
        self._fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self._rotation = int(self._cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > max_frame_pixels():  # before the first frame is decoded
            raise VideoError(
                f"{self.path} has {width}x{height} frames, over the frame limit of "
                f"{max_frame_pixels():,} pixels ({MAX_FRAME_PIXELS_ENV}); scale the video down "
                "first, or raise the limit if the memory is there"
            )
        ok, first = self._cap.read()
        if not ok:
            raise VideoDecodeError(
                f"OpenCV cannot decode any frame of {self.path}; the data is damaged or the "
                "codec is unsupported: try --decoder pyav"
            )
        self._size = (first.shape[1], first.shape[0])  # display size: OpenCV rotates frames
        self._codec = _fourcc(self._cap.get(cv2.CAP_PROP_FOURCC))
        declared = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._declared = declared if declared > 0 else None
        self._count = self._verified_count(declared)
        # OpenCV's seeks in MPEG-TS (FFmpeg seeks it by byte position) land tens of frames off
        # while it still numbers frames from where it was sent: there every seek is checked, and
        # frame 0 is reached by opening the file again.
        self._seek_checked = container_family(self.path) == MPEG_TS
        if self._seek_checked:
            self._cap.release()
            self._cap = self._open()
        else:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._pos = -1

    def _open(self) -> cv2.VideoCapture:
        image = image_kind(self.path)
        if image is not None:  # OpenCV would open it as a one-frame video
            raise NotAVideoError(f"{self.path} is a still image ({image}), not a video")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            family = container_family(self.path)
            if family is not None:
                raise TruncatedVideoError(
                    f"{self.path} ({family} container) cannot be opened by OpenCV: it is "
                    "truncated, damaged, or has no video stream"
                )
            raise NotAVideoError(
                f"{self.path} is not a video OpenCV can read (no video stream, or not a media file)"
            )
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        return cap

    def _verified_count(self, declared: int) -> int:
        # The header's count can be missing or wrong: trust it only if its last frame decodes
        # and there is nothing after it; otherwise count by grabbing every frame.
        if declared > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, declared - 1)
            if self._cap.grab() and not self._cap.grab():
                return declared
        self._cap.release()
        self._cap = self._open()
        count = 0
        while self._cap.grab():
            count += 1
        self._cap.release()
        self._cap = self._open()
        return count

    def info(self) -> VideoInfo:
        w, h = self._size
        coded = (h, w) if self._rotation in (90, 270) else (w, h)
        return VideoInfo(
            path=str(self.path),
            decoder=self.name,
            container="unknown",
            codec=self._codec,
            pixel_format=None,
            bit_depth=None,
            width=w,
            height=h,
            coded_width=coded[0],
            coded_height=coded[1],
            rotation=self._rotation,
            fps=round(self._fps, 6),
            duration=round(self._count / self._fps, 6),
            num_frames=self._count,
            container_frames=self._declared,
            variable_frame_rate=None,
            keyframes=None,
            has_audio=None,
            truncated=bool(self._declared and self._declared > self._count),
            warnings=(),
        )

    def frame_times(self) -> np.ndarray:
        return np.arange(self._count, dtype=np.float64) / self._fps

    def read(self, indices: Sequence[int], short_side: int | None = None) -> np.ndarray:
        wanted = [int(i) for i in indices]
        bad = [i for i in wanted if not 0 <= i < self._count]
        if bad:
            raise VideoError(
                f"frame index {bad[0]} is outside {self.path} (frames 0..{self._count - 1})"
            )
        got: dict[int, np.ndarray] = {}
        every_frame = np.arange(self._count)  # OpenCV can be asked to seek to any frame
        for run in plan_fetch(wanted, every_frame, self._pos, OPENCV_SEEK_COST):
            self._run(run, got)
        missing = sorted(set(wanted) - set(got))
        if missing:
            raise VideoDecodeError(f"frame {missing[0]} of {self.path} could not be decoded")
        frames = np.stack([got[i] for i in wanted])
        return frames if short_side is None else resize_short_side(frames, short_side)

    def _run(self, run: FetchRun, got: dict[int, np.ndarray]) -> None:
        want = set(run.wanted)
        if run.seek_to is not None and self._seek(run.seek_to):
            self._pos = run.seek_to  # grabbed by the seek's check
            if self._pos in want:
                self._keep(got)
        elif run.seek_to is not None:
            self._cap.release()  # decode from the first frame instead: slow, but right
            self._cap = self._open()
            self._pos = -1
        while self._pos < run.stop:
            if not self._cap.grab():
                self._pos = self._count  # end of file: the next read must seek
                return
            self._pos += 1
            if self._pos in want:
                self._keep(got)

    def _seek(self, k: int) -> bool:
        """Seeks to frame ``k`` and grabs it; whether it is frame ``k``. Where seeks are checked
        (MPEG-TS, see __init__) the grabbed frame's time says where the seek landed; elsewhere
        the seek is trusted (AVI's frame times run one frame late, so they cannot check it)."""
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        if not self._cap.grab():
            return False
        if not self._seek_checked:
            return True
        shown = self._cap.get(cv2.CAP_PROP_POS_MSEC) * self._fps / 1000
        return abs(shown - k) < 0.5

    def _keep(self, got: dict[int, np.ndarray]) -> None:
        ok, bgr = self._cap.retrieve()
        if ok:
            got[self._pos] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


def _fourcc(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ").lower() or "unknown"
