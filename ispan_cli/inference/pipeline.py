"""The classify job: decode in background threads, batch, run the model, yield records in order.

Decoding and preprocessing of the next videos run in a thread pool while the model works on the
current batch (PyAV and NumPy release the GIL for the heavy parts), so a folder job runs at the
model's speed. At most ``batch_size + 2 * workers`` decoded clips are held at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.inference.inputs import InputItem
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.video.clip import Clip, load_clip


@dataclass(frozen=True)
class ClassifyOptions:
    segments: int
    crops: int = 1
    topk: int = 5
    decoder: str = "auto"
    stream: int | None = None  # the container's video stream; None: the one ffmpeg picks
    batch_size: int = 4
    workers: int = 2
    fail_fast: bool = False
    codec_threads: int = 0  # FFmpeg threads per worker (the thread plan's; 0: FFmpeg's choice)

    def settings(self) -> dict:
        """What changes the records (not batch size or workers): every record carries it, and
        ``--resume`` refuses a file written with other settings."""
        return {
            "segments": self.segments,
            "crops": self.crops,
            "topk": self.topk,
            "decoder": self.decoder,
            "stream": self.stream,
        }


def run_classify(
    predictor: Predictor,
    items: Iterable[InputItem],
    options: ClassifyOptions,
) -> Iterator[dict]:
    """Yields one record per input, in input order (see records.py for the schema)."""
    spec = replace(predictor.preprocessing, crops=options.crops)
    window = options.batch_size + 2 * max(options.workers, 1)
    pending: list[tuple[InputItem, Future | None]] = []
    items = iter(items)
    exhausted = False
    pool_cm = (
        ThreadPoolExecutor(options.workers, thread_name_prefix="ispan-decode")
        if options.workers > 0
        else _InlineExecutor()
    )
    with pool_cm as pool:
        while True:
            while not exhausted and len(pending) < window:
                item = next(items, None)
                if item is None:
                    exhausted = True
                    break
                future = None
                if item.error is None:
                    item = _checked(item)
                if item.error is None:
                    future = pool.submit(
                        _load,
                        item.path,
                        options.segments,
                        spec,
                        options.decoder,
                        options.stream,
                        options.codec_threads,
                    )
                pending.append((item, future))
            if not pending:
                return
            # Take the leading inputs up to a full batch of decoded clips (or what is left).
            ready: list[tuple[InputItem, Clip | None, str | None]] = []
            clips = 0
            while pending and (clips < options.batch_size):
                item, future = pending.pop(0)
                clip, error = _result(item, future)
                ready.append((item, clip, error))
                clips += clip is not None
                if error and options.fail_fast:
                    break
            yield from _score(predictor, ready, options)
            if options.fail_fast and any(err for _, _, err in ready):
                for _, future in pending:
                    if future is not None:
                        future.cancel()
                return


def _checked(item: InputItem) -> InputItem:
    """A missing or unreadable file fails here, without a trip through the decode pool: a list
    of a million mostly missing paths runs at the speed of ``stat``."""
    from ispan_cli.video.decoder import check_video_path

    if "://" in item.path:  # not a local path: the decoder decides
        return item
    try:
        check_video_path(item.path)
    except ISpanError as exc:
        return InputItem(item.path, str(exc))
    return item


class _InlineExecutor:
    """--workers 0: decode in the calling thread, when the clip is submitted."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # delivered by future.result(), like a pool would
            future.set_exception(exc)
        return future

    def __enter__(self) -> _InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _load(path, segments, spec, decoder, stream, threads) -> tuple[Clip | None, str | None]:
    """The clip, or why not, worked out where it is decoded: an exception handed over in a
    Future keeps the frames of its traceback (the reader that raised, its decoder) in a cycle
    with the future, left for the garbage collector."""
    try:
        return load_clip(path, segments, spec, decoder, stream, threads), None
    except ISpanError as exc:
        return None, str(exc)
    except Exception as exc:  # a decoder crash on one file must not stop the job
        return None, f"{type(exc).__name__}: {exc}"


def _result(item: InputItem, future: Future | None) -> tuple[Clip | None, str | None]:
    if future is None:
        return None, item.error
    return future.result()


def _score(predictor: Predictor, ready, options: ClassifyOptions) -> Iterator[dict]:
    clips = [clip for _, clip, _ in ready if clip is not None]
    probs: np.ndarray | None = None
    model_ms = 0.0
    failed: str | None = None
    if clips:
        start = time.perf_counter()
        try:
            probs = predictor.predict(np.stack([c.data for c in clips]))
        except ISpanError as exc:  # e.g. an ONNX graph that refuses these clips: per input
            failed = str(exc)
        model_ms = (time.perf_counter() - start) * 1e3 / len(clips)
    row = 0
    for item, clip, error in ready:
        if clip is None or failed is not None:
            error = error or failed
            yield error_record(predictor, item.path, error or "unknown error", options.settings())
            continue
        yield clip_record(predictor, clip, probs[row], options, model_ms)
        row += 1


def topk_entries(predictor: Predictor, probs: np.ndarray, k: int) -> list[dict]:
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [
        {"rank": r + 1, "index": int(i), "label": predictor.label(int(i)), "score": float(probs[i])}
        for r, i in enumerate(order)
    ]


def base_record(predictor: Predictor, path: str, settings: dict | None = None) -> dict:
    record = {
        "input": path,
        "model": predictor.identity.to_dict(),
        "runtime": predictor.runtime,
        "device": predictor.device,
        "precision": getattr(predictor, "precision", "fp32"),
    }
    if settings is not None:
        record["settings"] = settings
    return record


def clip_record(
    predictor: Predictor, clip: Clip, probs: np.ndarray, options: ClassifyOptions, model_ms: float
) -> dict:
    return {
        **base_record(predictor, clip.path, options.settings()),
        "topk": topk_entries(predictor, probs, options.topk),
        "frames": {
            "segments": len(clip.indices),
            "crops": int(clip.data.shape[0]),
            "indices": clip.indices,
            "timestamps": [round(t, 6) for t in clip.timestamps],
            "repeated": clip.repeated,
        },
        "timings_ms": {
            "decode": round(clip.decode_ms, 3),
            "preprocess": round(clip.preprocess_ms, 3),
            "model": round(model_ms, 3),
        },
        "error": None,
    }


def error_record(predictor: Predictor, path: str, error: str, settings: dict | None = None) -> dict:
    return {
        **base_record(predictor, path, settings),
        "topk": [],
        "frames": None,
        "timings_ms": None,
        "error": " ".join(error.split()),
    }
