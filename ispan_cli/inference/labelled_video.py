"""``classify --save-video``: the input re-encoded with the timeline's classes drawn on it.

Every frame shows the top-k classes and scores of the window in effect (the latest window that
started at or before the frame; on a live source, the latest window classified) and, along the
bottom, a strip of the top-1 class over time (the whole file; the last minute of a stream) with
the current time marked. The MP4 is H.264 yuv420p written as fragments (``VideoWriter(...,
fragmented=True)``), so it plays in browsers and a run killed half way leaves a file that plays
up to its last fragment.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ispan_cli.video.writer import VideoWriter

LIVE_STRIP_SECONDS = 60.0  # how much history the strip shows on a live source
_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (220, 190, 255),
        (170, 110, 40),
        (255, 250, 200),
        (128, 0, 0),
        (170, 255, 195),
        (128, 128, 0),
        (255, 215, 180),
        (0, 0, 128),
        (128, 128, 128),
    ],
    dtype=np.uint8,
)  # fmt: skip  (Sasha Trubetskoy's 20 distinct colours)


def class_colour(index: int) -> np.ndarray:
    """The strip colour of class ``index`` (RGB)."""
    return _PALETTE[index % len(_PALETTE)]


class LabelledVideo:
    """Draws records onto frames and writes them; ``span``: the seconds the strip covers (the
    file's duration), or None for a rolling strip of the last minute (live)."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        topk: int,
        span: float | None,
        decorate: Callable[[np.ndarray, dict | None], np.ndarray] | None = None,
    ) -> None:
        # ultrafast: 2.4x quicker than veryfast at twice the size (measured, 320x240); a
        # result video for review is not worth the classification's time
        self.writer = VideoWriter(path, fps, fragmented=True, preset="ultrafast")
        self.decorate = decorate  # e.g. the window's attention heat (viz/window_heat.py)
        self.topk = topk
        self.span = span
        self._times: list[float] = []  # frame times drawn so far, and the top-1 class of each
        self._classes: list[int] = []

    @property
    def frames(self) -> int:
        return self.writer.frames

    def draw(self, image: np.ndarray, t: float, record: dict | None) -> np.ndarray:
        """``image`` (RGB uint8) annotated with ``record``'s classes at time ``t``."""
        import cv2

        out = np.array(image, dtype=np.uint8, copy=True)
        if self.decorate is not None:
            out = np.ascontiguousarray(self.decorate(out, record), dtype=np.uint8)
        h, w = out.shape[:2]
        top = (record or {}).get("topk") or []
        self._times.append(t)
        self._classes.append(top[0]["index"] if top else -1)
        scale = max(0.3, h / 720)
        thick = 1 if h < 540 else 2
        lines = [f"{_ascii(e['label'])} {e['score']:.2f}" for e in top[: self.topk]]
        if record and "window" in record:
            lines.append(f"window {record['window']['start']:.1f}-{record['window']['end']:.1f} s")
        font = cv2.FONT_HERSHEY_SIMPLEX
        if lines:
            widest = max(lines, key=len)
            while scale > 0.2 and cv2.getTextSize(widest, font, scale, thick)[0][0] > 0.6 * w:
                scale *= 0.85  # small frames: keep the picture visible beside the text
            sizes = [cv2.getTextSize(s, font, scale, thick)[0] for s in lines]
            step = max(sz[1] for sz in sizes) + 5
            box_w = min(w, max(sz[0] for sz in sizes) + 8)
            box = out[: step * len(lines) + 6, :box_w]
            box[:] = (box * 0.35).astype(np.uint8)
            for i, text in enumerate(lines):
                cv2.putText(out, text, (4, step * (i + 1)), font, scale, (255, 255, 255), thick,
                            cv2.LINE_AA)  # fmt: skip
        self._strip(out, t)
        return out

    def _strip(self, out: np.ndarray, t: float) -> None:
        h, w = out.shape[:2]
        height = max(4, h // 16)
        if self.span:
            t0, span = 0.0, self.span
        else:
            t0, span = max(0.0, t - LIVE_STRIP_SECONDS), LIVE_STRIP_SECONDS
        column_times = t0 + (np.arange(w) + 0.5) * span / w
        times = np.asarray(self._times)
        classes = np.asarray(self._classes)
        pos = np.searchsorted(times, column_times, side="right") - 1
        known = (pos >= 0) & (column_times <= t)
        colours = np.zeros((w, 3), np.uint8) + 40
        drawn = known & (classes[np.maximum(pos, 0)] >= 0)
        colours[drawn] = _PALETTE[classes[pos[drawn]] % len(_PALETTE)]
        out[h - height :] = colours[None]
        x = int(min(w - 1, max(0, (t - t0) / span * w)))
        out[h - height - 2 :, x] = 255  # now

    def write(self, image: np.ndarray, t: float, record: dict | None) -> None:
        self.writer.write(self.draw(image, t, record))

    def close(self):
        if self.writer.frames:
            return self.writer.close()
        return None


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(str(round(float(fps), 3))).limit_denominator(1001)


def _ascii(text: str) -> str:
    # OpenCV's Hershey fonts draw ASCII only; a label is data, not markup, either way
    return str(text).encode("ascii", "replace").decode("ascii")


def label_file(
    records: Iterable[dict], path: str, out: Path, topk: int, decorate: Callable | None = None
) -> Iterator[dict]:
    """Passes ``records`` (one file's timeline, in window order) through while writing ``out``:
    the frames before each window's start are drawn with the window before it."""
    from ispan_cli.errors import ISpanError
    from ispan_cli.video.decoder import open_video

    try:
        reader = open_video(path)
    except ISpanError:  # the timeline reports the unreadable file; no video to write
        yield from records
        return
    video = None
    with reader:
        times = reader.frame_times()
        info = reader.info()
        video = LabelledVideo(out, info.fps or 25.0, topk, info.duration or None, decorate)
        try:
            pos, current = 0, None
            for record in records:
                if record.get("error") is None and "window" in record:
                    pos = _draw_until(reader, times, pos, record["window"]["start"], video,
                                      current)  # fmt: skip
                    current = record
                yield record
            _draw_until(reader, times, pos, float("inf"), video, current)
        finally:
            video.close()


def _draw_until(reader, times, pos: int, until: float, video: LabelledVideo, record) -> int:
    chunk = 32
    end = int(np.searchsorted(times, until - 1e-9, side="left"))
    while pos < end:
        stop = min(pos + chunk, end)
        frames = reader.read(range(pos, stop))
        for i, frame in zip(range(pos, stop), frames, strict=True):
            video.write(frame, float(times[i]), record)
        pos = stop
    return pos


class LiveLabeller:
    """``--save-video`` on a live source: frames from the decoding thread are drawn with the
    latest record and written by a thread of its own; when it falls behind, frames are left out
    of the video (counted in ``skipped``) rather than slowing the decoding."""

    def __init__(self, out: Path, fps: float, topk: int) -> None:
        self.video = LabelledVideo(out, fps, topk, None)
        self.record: dict | None = None
        self.skipped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="ispan-save-video", daemon=True)
        self._thread.start()

    def on_frame(self, frame, stream_time: float, fps: float | None) -> None:
        if self.video.frames == 0 and fps:
            self.video.writer.fps = _rate(fps)
        try:
            self._queue.put_nowait((frame.image, stream_time))
        except queue.Full:
            self.skipped += 1

    def see(self, record: dict) -> dict:
        if record.get("topk"):
            self.record = record
        return record

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.video.write(item[0], item[1], self.record)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.video.close()
