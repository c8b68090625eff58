"""The Python API: ``from ispan_cli import Classifier``.

The same code as ``ispan classify``: records are the dicts the CLI writes as JSON (see
``ispan_cli/inference/records.py`` for the schema), produced by the same functions.

    clf = Classifier(model="istpan-tiny-synthetic")
    clf.classify("clip.mp4")["topk"][0]["label"]
    clf.classify_frames(frames)                   # (N, H, W, 3) uint8 RGB, e.g. from OpenCV
    for record in clf.stream("rtsp://camera/s"):  # live: one record per window, as it arrives
        ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.live import LiveOptions, run_live
from ispan_cli.inference.pipeline import ClassifyOptions, base_record, run_classify, topk_entries
from ispan_cli.inference.timeline import run_timeline
from ispan_cli.video.preprocess import preprocess
from ispan_cli.video.sampling import TSNSampler
from ispan_cli.video.sources import is_live_input


class Classifier:
    """A loaded model that classifies files, URLs, streams and frames in memory.

    model: a zoo name, model folder, Hub repo or ``.onnx`` file (None: the default model);
    device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``; runtime: ``torch`` or ``onnx``;
    segments: K frames per clip or window (default: the model's); crops: 1, 3 or 10; topk:
    classes per record; timeout: seconds a network source or the Hub may stay silent.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        runtime: str = "torch",
        precision: str = "fp32",
        segments: int | None = None,
        crops: int = 1,
        topk: int = 5,
        timeout: float | None = None,
    ) -> None:
        from ispan_cli.runtime.loading import load_predictor

        self.predictor = load_predictor(model, runtime, device, precision, timeout=timeout)
        self.timeout = timeout
        self.options = ClassifyOptions(
            segments=segments or self.predictor.num_segments,
            crops=crops,
            topk=topk,
            batch_size=1,
            workers=0,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.predictor.labels

    def classify(
        self, source: str, window: float | None = None, stride: float | None = None
    ) -> dict | list[dict]:
        """One record for a file or URL (K segments over the whole video), or with ``window``
        the list of window records (the timeline). Raises ISpanError when it cannot be read."""
        from ispan_cli.video.sources import set_default_timeout

        source = str(source)
        if is_live_input(source):
            raise ISpanError(f"{source} is a live source; use Classifier.stream() for it")
        set_default_timeout(self.timeout)
        item = [InputItem(source)]
        if window is None:
            record = next(run_classify(self.predictor, item, self.options))
            _raise_for(record)
            return record
        records = list(run_timeline(self.predictor, item, self.options, window, stride or window))
        for record in records:
            _raise_for(record)
        return records

    def classify_frames(
        self, frames: np.ndarray | Sequence[np.ndarray], timestamps: Sequence[float] | None = None
    ) -> dict:
        """One record for frames already in memory: (N, H, W, 3) uint8 RGB (convert OpenCV's
        BGR with ``frame[..., ::-1]``). K frames are picked as for a file (segment centres, by
        ``timestamps`` in seconds when given, else by position)."""
        array = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or not len(array):
            raise ISpanError(
                f"frames must be uint8 RGB shaped (N, H, W, 3) with N >= 1, got {array.dtype} "
                f"{tuple(array.shape)}"
            )
        if timestamps is None:
            times = np.arange(len(array), dtype=np.float64)
        else:
            times = np.asarray(timestamps, dtype=np.float64)
            if times.shape != (len(array),) or not np.all(np.diff(times) >= 0):
                raise ISpanError(
                    f"timestamps must be {len(array)} non-decreasing seconds, one per frame"
                )
            times = times - times[0]
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
        sampling = TSNSampler(self.options.segments).sample(times, float(times[-1]) + step)
        indices = sampling.indices[0]
        spec = replace(self.predictor.preprocessing, crops=self.options.crops)
        start = time.perf_counter()
        data = preprocess(array[indices], spec)  # (K, H, W, 3) -> (crops, K, 3, S, S)
        prepared = time.perf_counter()
        probs = self.predictor.predict(data[None])[0]
        done = time.perf_counter()
        stamps = times[indices] if timestamps is not None else indices.astype(np.float64)
        return {
            **base_record(self.predictor, "<frames>", self.options.settings()),
            "topk": topk_entries(self.predictor, probs, self.options.topk),
            "frames": {
                "segments": len(indices),
                "crops": int(data.shape[0]),
                "indices": [int(i) for i in indices],
                "timestamps": [round(float(t), 6) for t in stamps],
                "repeated": bool(sampling.repeated),
            },
            "timings_ms": {
                "decode": 0.0,
                "preprocess": round((prepared - start) * 1e3, 3),
                "model": round((done - prepared) * 1e3, 3),
            },
            "error": None,
        }

    def stream(
        self,
        source: str,
        window: float = 2.0,
        stride: float | None = None,
        reconnect: int = 0,
        max_latency: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[dict]:
        """Window records of a live source (or a file, as its timeline) as they are made;
        gap records after reconnects; an error record if it fails for good. Set ``stop`` (or
        close the generator) to end it."""
        source = str(source)
        if not is_live_input(source):
            yield from run_timeline(
                self.predictor, [InputItem(source)], self.options, window, stride or window
            )
            return
        live = LiveOptions(window, stride or window, reconnect, max_latency, self.timeout)
        yield from run_live(self.predictor, source, self.options, live, stop=stop)


def _raise_for(record: dict) -> None:
    if record.get("error"):
        raise ISpanError(record["error"])
