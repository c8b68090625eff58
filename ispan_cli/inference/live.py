"""The live timeline: rolling windows over a stream or camera, classified as the frames arrive.

A decoding thread reads the source, keeps the frames of the windows still open (memory: one
window of frames at the model's scale, however long it runs) and hands each completed window to
the model through a one-window slot. When the model is still busy with the previous window, the
waiting one is replaced by the newer: whole windows are dropped, never delayed, and the next
record says how many (``live.dropped_windows``). A broken stream is reopened with backoff
(``reconnect`` times in a row) and the gap is reported as a record of its own.

Windows are chosen as the file timeline chooses them (``WindowSampler``: frames in [start, end),
K segment centres by timestamp), on the stream's own clock: seconds from its first frame.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.pipeline import ClassifyOptions, base_record, error_record, topk_entries
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.video.preprocess import preprocess

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # waits before reconnect attempts 1, 2, ... (last repeats)
# The most frames one window keeps (a 10 s window at 100 fps): memory stays bounded on a stream
# whose timestamps stop advancing; the oldest go first.
MAX_WINDOW_FRAMES = 1000


@dataclass(frozen=True)
class LiveOptions:
    window: float
    stride: float
    reconnect: int = 0  # reopen attempts in a row after the stream breaks (0: stop)
    # drop a window whose record would come later than this after its last frame (0: no bound)
    max_latency: float | None = None
    timeout: float | None = None  # seconds the source may stay silent (None: --timeout default)

    def settings(self) -> dict:
        return {"window": self.window, "stride": self.stride}


@dataclass
class _Window:
    index: int
    start: float
    end: float
    images: np.ndarray  # (K, H, W, 3) uint8 at the model's scale
    numbers: list[int]  # frame numbers since the run started
    times: list[float]
    last_arrival: float  # wall clock when the window's last frame arrived
    repeated: bool


@dataclass
class _Event:
    record: dict | None  # a gap record, or None: the source ended
    error: str | None = None  # the source failed for good


class _Handoff:
    """Windows and events from the decoding thread to the model, in order; at most one window
    waits (a newer one replaces it, counted as dropped)."""

    def __init__(self) -> None:
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self.dropped = 0  # since the last window taken

    def put_window(self, window: _Window) -> None:
        with self._cond:
            if self._items and isinstance(self._items[-1], _Window):
                self._items.pop()
                self.dropped += 1
            self._items.append(window)
            self._cond.notify()

    def put_event(self, event: _Event) -> None:
        with self._cond:
            self._items.append(event)
            self._cond.notify()

    def take(self, wait: float) -> tuple[_Window | _Event | None, int, bool]:
        """The next item (None after ``wait`` seconds without one), the windows dropped, and
        whether it came while this call waited (nothing was waiting when it was called)."""
        with self._cond:
            waited = not self._items
            if waited:
                self._cond.wait(wait)
            if not self._items:
                return None, 0, waited
            item = self._items.popleft()
            dropped = 0
            if isinstance(item, _Window):
                dropped, self.dropped = self.dropped, 0
            return item, dropped, waited


class _LatencyBound:
    """``--max-latency``: whether a window taken now can still be classified in time.

    A window's record is written ``age + model time`` after its last frame arrived, so the
    window is dropped when its age plus the model's recent time per window (the median of the
    last :data:`RECENT` windows) is over the bound, unless it came while the model waited for
    it: no fresher window can be had then, so it is classified even if the model alone takes
    longer than the bound (the latency is then the model's own time, the least possible).
    """

    RECENT = 5

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds or None  # 0: no bound
        self._recent: collections.deque = collections.deque(maxlen=self.RECENT)

    def too_late(self, window: _Window, fresh: bool) -> bool:
        if self.seconds is None or fresh:
            return False
        expected = float(np.median(self._recent)) if self._recent else 0.0
        return time.time() - window.last_arrival + expected > self.seconds

    def classified(self, seconds: float) -> None:
        self._recent.append(seconds)


def timeline_records(
    predictor: Predictor,
    items: Iterable[InputItem],
    options: ClassifyOptions,
    live: LiveOptions,
    save_video: Path | None = None,
    decorate: Callable | None = None,
) -> Iterator[dict]:
    """Timeline mode over any inputs: files by :func:`run_timeline`, live sources by
    :func:`run_live`, in input order; ``save_video``: the labelled video of the (one) input,
    ``decorate(frame, record)`` drawn under its labels (files only)."""
    from ispan_cli.inference.labelled_video import LiveLabeller, label_file
    from ispan_cli.inference.timeline import run_timeline
    from ispan_cli.video.sources import is_live_input

    for item in items:
        if item.error is not None or not is_live_input(item.path):
            records = run_timeline(predictor, [item], options, live.window, live.stride)
            if save_video is not None and item.error is None:
                records = label_file(records, item.path, save_video, options.topk, decorate)
            yield from records
            continue
        labeller = None if save_video is None else LiveLabeller(save_video, 25.0, options.topk)
        try:
            for record in run_live(predictor, item.path, options, live,
                                   labeller.on_frame if labeller else None):  # fmt: skip
                yield labeller.see(record) if labeller else record
        finally:
            if labeller is not None:
                labeller.close()


def run_live(
    predictor: Predictor,
    source: str,
    options: ClassifyOptions,
    live: LiveOptions,
    on_frame: Callable | None = None,
    stop: threading.Event | None = None,
) -> Iterator[dict]:
    """Yields a record per classified window (and per reconnect gap) until the source ends,
    fails for good, ``stop`` is set, or Ctrl-C. ``on_frame(frame, stream_time, fps)`` sees every
    decoded frame (in the decoding thread; it must be quick)."""
    from ispan_cli.video.sources import parse_source

    if live.window <= 0 or live.stride <= 0:
        raise ISpanError("--window and --stride must be positive numbers of seconds")
    src = parse_source(source)
    spec = replace(predictor.preprocessing, crops=options.crops)
    settings = {**options.settings(), **live.settings()}
    stop = stop or threading.Event()
    handoff = _Handoff()
    decoding = threading.Thread(
        target=_decode_loop,
        args=(src, spec.resize, options.segments, live, handoff, stop, on_frame, predictor,
              settings),
        name="ispan-live-decode",
        daemon=True,  # a read blocked in FFmpeg must not keep the process alive after Ctrl-C
    )  # fmt: skip
    bound = _LatencyBound(live.max_latency)
    with _ctrl_c_sets(stop):
        decoding.start()
        idle = True  # the model waits for a window
        try:
            while not stop.is_set():
                item, dropped, waited = handoff.take(0.1)
                if item is None:
                    idle = True
                    continue
                fresh, idle = idle or waited, False
                if isinstance(item, _Event):
                    if item.error is not None:
                        yield error_record(predictor, src.display, item.error, settings)
                        return
                    if item.record is None:
                        return
                    yield item.record
                    continue
                if bound.too_late(item, fresh):
                    handoff.dropped += dropped + 1  # counted in the next record
                    continue
                record = _classify_window(predictor, src.display, item, spec, options, settings,
                                          dropped)  # fmt: skip
                bound.classified(sum(record["timings_ms"].values()) / 1e3)
                yield record
        finally:
            stop.set()
            decoding.join(timeout=1.0)


def _classify_window(predictor, display, w: _Window, spec, options, settings, dropped) -> dict:
    start = time.perf_counter()
    data = preprocess(w.images, spec)[None]  # (K, H, W, 3) -> (1, crops, K, 3, S, S)
    prepared = time.perf_counter()
    probs = predictor.predict(data)[0]
    done = time.perf_counter()
    return {
        **base_record(predictor, display, settings),
        "window": {"index": w.index, "start": round(w.start, 6), "end": round(w.end, 6)},
        "topk": topk_entries(predictor, probs, options.topk),
        "frames": {
            "segments": len(w.numbers),
            "crops": int(data.shape[1]),
            "indices": w.numbers,
            "timestamps": [round(t, 6) for t in w.times],
            "repeated": w.repeated,
        },
        "timings_ms": {
            "decode": 0.0,  # in the decoding thread, overlapped with the model
            "preprocess": round((prepared - start) * 1e3, 3),
            "model": round((done - prepared) * 1e3, 3),
        },
        "live": {
            "latency_s": round(time.time() - w.last_arrival, 4),
            "dropped_windows": dropped,
            "wall_time": round(time.time(), 3),
        },
        "error": None,
    }


class _Windows:
    """Collects frames into windows on the run's clock (which keeps running across reconnects)."""

    def __init__(self, window: float, stride: float, segments: int) -> None:
        from ispan_cli.video.sampling import WindowSampler

        self.window, self.stride = window, stride
        self.sampler = WindowSampler(window, window, frames=segments)
        # (time, number, image, arrived); bounded even if timestamps stop advancing
        self.frames: collections.deque = collections.deque(maxlen=MAX_WINDOW_FRAMES)
        self.index = 0  # of the next window to complete
        self.number = 0  # frames seen since the run started

    @property
    def start(self) -> float:
        return self.index * self.stride

    def skip_to(self, t: float) -> None:
        """After a gap: windows that would span it are not made."""
        self.frames.clear()
        while self.start < t - 1e-9:
            self.index += 1

    def add(self, t: float, image: np.ndarray, arrived: float) -> list[_Window]:
        done = []
        while self.frames and t >= self.start + self.window - 1e-9:
            w = self._make()
            if w is not None:
                done.append(w)
            self.index += 1
            while self.frames and self.frames[0][0] < self.start - 1e-9:
                self.frames.popleft()
        if t >= self.start - 1e-9:
            self.frames.append((t, self.number, image, arrived))
        self.number += 1
        return done

    def _make(self) -> _Window | None:
        start, end = self.start, self.start + self.window
        inside = [f for f in self.frames if start - 1e-9 <= f[0] < end - 1e-9]
        if not inside:
            return None
        times = np.array([f[0] - start for f in inside])
        sampling = self.sampler.sample(times, self.window)
        picked = [inside[int(i)] for i in sampling.indices[0]]
        return _Window(
            index=self.index,
            start=start,
            end=end,
            images=np.stack([f[2] for f in picked]),
            numbers=[f[1] for f in picked],
            times=[f[0] for f in picked],
            last_arrival=inside[-1][3],
            repeated=bool(sampling.repeated),
        )


def _decode_loop(src, short_side, segments, live, handoff, stop, on_frame, predictor, settings):
    from ispan_cli.video.live import LiveReader

    windows = _Windows(live.window, live.stride, segments)
    clock = 0.0  # run time of the last frame
    last_wall: float | None = None  # wall clock of the last frame
    failures = 0
    reason = ""
    while not stop.is_set():
        try:
            reader = LiveReader(src, timeout=live.timeout, short_side=short_side)
        except ISpanError as exc:
            reason = str(exc)
            reader = None
        if reader is not None:
            with reader:
                offset: float | None = None
                try:
                    for frame in reader.frames():
                        if stop.is_set():
                            return
                        if offset is None:  # the connection's first frame
                            offset = _resume_clock(clock, last_wall, frame.arrived)
                            if failures:
                                handoff.put_event(_Event(_gap_record(
                                    predictor, src.display, settings, clock, offset, failures,
                                    reason)))  # fmt: skip
                                windows.skip_to(offset)
                            failures = 0
                        clock, last_wall = offset + frame.time, frame.arrived
                        if on_frame is not None:
                            on_frame(frame, clock, reader.fps)
                        for w in windows.add(clock, frame.image, frame.arrived):
                            handoff.put_window(w)
                    reason = "the stream ended"
                except ISpanError as exc:
                    reason = str(exc)
                    if reader.silent_since is not None and last_wall is not None:
                        # the gap began when the data stopped, not when the read gave up
                        last_wall = min(last_wall, reader.silent_since)
        if stop.is_set():
            return
        if reader is not None and reason == "the stream ended" and live.reconnect == 0:
            handoff.put_event(_Event(None))
            return
        if failures >= live.reconnect:
            tried = f" after {failures} reconnect attempt(s)" if failures else ""
            handoff.put_event(_Event(None, error=f"{reason}{tried}"))
            return
        if stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]):
            return
        failures += 1


def _resume_clock(clock: float, last_wall: float | None, now: float) -> float:
    """The run time a new connection's first frame gets: the wall time since the last frame
    was seen is added, so stream time keeps pace with the world across a gap."""
    if last_wall is None:
        return 0.0
    return clock + max(now - last_wall, 0.0)


def _gap_record(predictor, display, settings, start, end, attempts, reason) -> dict:
    return {
        **base_record(predictor, display, settings),
        "gap": {
            "start": round(start, 6),
            "end": round(end, 6),
            "seconds": round(end - start, 3),
            "reconnects": attempts,
            "reason": " ".join(reason.split()),
        },
        "topk": [],
        "frames": None,
        "timings_ms": None,
        "error": None,
    }


@contextlib.contextmanager
def _ctrl_c_sets(stop: threading.Event):
    """Ctrl-C sets ``stop`` (the run ends after the record in hand, outputs flushed) instead of
    raising mid-write; a second Ctrl-C raises as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
