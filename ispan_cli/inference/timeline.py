"""Timeline mode: classify sliding windows of long videos, streaming one record per window.

Memory holds one batch of windows (plus the next one being decoded in the background), whatever
the video's length: the reader fetches just those windows' frames, decoding forward between
nearby windows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.pipeline import ClassifyOptions, base_record, error_record, topk_entries
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.video.preprocess import PreprocessSpec, preprocess


def run_timeline(
    predictor: Predictor,
    items: Iterable[InputItem],
    options: ClassifyOptions,
    window: float,
    stride: float,
) -> Iterator[dict]:
    """Yields one record per window of each input, in time order (``window`` added)."""
    if window <= 0 or stride <= 0:
        raise ISpanError(f"--window and --stride must be positive seconds, got {window}, {stride}")
    spec = replace(predictor.preprocessing, crops=options.crops)
    settings = {**options.settings(), "window": window, "stride": stride}
    for item in items:
        if item.error is not None:
            yield error_record(predictor, item.path, item.error, settings)
            continue
        failed = False
        windows = _video_windows(predictor, item.path, spec, options, window, stride, settings)
        for record in windows:
            failed = failed or record["error"] is not None
            yield record
        if failed and options.fail_fast:
            return


def _video_windows(predictor, path, spec, options, window, stride, settings) -> Iterator[dict]:
    from ispan_cli.video.decoder import open_video
    from ispan_cli.video.sampling import WindowSampler

    try:
        reader = open_video(path, options.decoder, options.stream)
    except ISpanError as exc:
        yield error_record(predictor, path, str(exc), settings)
        return
    with reader, ThreadPoolExecutor(1, thread_name_prefix="ispan-window") as pool:
        try:
            sampler = WindowSampler(window, stride, frames=options.segments)
            sampling = sampler.sample(reader.frame_times(), reader.info().duration)
        except ISpanError as exc:
            yield error_record(predictor, path, str(exc), settings)
            return
        chunks = [
            range(s, min(s + options.batch_size, len(sampling.indices)))
            for s in range(0, len(sampling.indices), options.batch_size)
        ]
        future = pool.submit(_fetch, reader, sampling.indices[chunks[0]], spec)
        for n, chunk in enumerate(chunks):
            try:
                data, decode_ms, preprocess_ms = future.result()
            except ISpanError as exc:
                yield {
                    **error_record(predictor, path, str(exc), settings),
                    "window": _span(sampling, chunk[0]),
                }
                return
            if n + 1 < len(chunks):  # decode the next windows while the model runs
                future = pool.submit(_fetch, reader, sampling.indices[chunks[n + 1]], spec)
            start = time.perf_counter()
            probs = predictor.predict(data)
            model_ms = (time.perf_counter() - start) * 1e3 / len(chunk)
            for row, w in enumerate(chunk):
                indices = sampling.indices[w]
                yield {
                    **base_record(predictor, path, settings),
                    "window": _span(sampling, w),
                    "topk": topk_entries(predictor, probs[row], options.topk),
                    "frames": {
                        "segments": len(indices),
                        "crops": int(data.shape[1]),
                        "indices": [int(i) for i in indices],
                        "timestamps": [round(float(t), 6) for t in sampling.timestamps[w]],
                        "repeated": bool(len(np.unique(indices)) < len(indices)),
                    },
                    "timings_ms": {
                        "decode": round(decode_ms / len(chunk), 3),
                        "preprocess": round(preprocess_ms / len(chunk), 3),
                        "model": round(model_ms, 3),
                    },
                    "error": None,
                }


def _fetch(reader, rows: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, float, float]:
    """Decodes the distinct frames of some windows once; returns (W, crops, K, 3, S, S)."""
    start = time.perf_counter()
    unique = np.unique(rows)
    frames = reader.read(unique, short_side=spec.resize)  # (U, H, W, 3)
    decoded = time.perf_counter()
    picked = frames[np.searchsorted(unique, rows)]  # (W, K, H, W, 3)
    data = np.stack([preprocess(view, spec) for view in picked])
    return data, (decoded - start) * 1e3, (time.perf_counter() - decoded) * 1e3


def _span(sampling, w: int) -> dict:
    start, end = sampling.spans[w]
    return {"index": int(w), "start": round(float(start), 6), "end": round(float(end), 6)}


def merge_windows(records: Iterable[dict]) -> Iterator[dict]:
    """Joins adjacent windows of one input with the same top-1 class into segments.

    Each segment: ``segment`` {start, end, windows}, ``label``, ``index`` and ``score`` (the mean
    top-1 probability over its windows). Error records pass through (their settings say merge).
    """
    run: list[dict] = []
    for record in records:
        same = (
            run
            and record["error"] is None
            and record["input"] == run[-1]["input"]
            and record["topk"][0]["index"] == run[-1]["topk"][0]["index"]
        )
        if run and not same:
            yield _segment(run)
            run = []
        if record["error"] is not None:
            if "settings" in record:
                record = {**record, "settings": {**record["settings"], "merge": True}}
            yield record
        else:
            run.append(record)
    if run:
        yield _segment(run)


def _segment(run: list[dict]) -> dict:
    first, top = run[0], run[0]["topk"][0]
    keep = ("input", "model", "runtime", "device", "precision")
    return {
        **{k: first[k] for k in keep},
        **({"settings": {**first["settings"], "merge": True}} if "settings" in first else {}),
        "segment": {
            "start": first["window"]["start"],
            "end": run[-1]["window"]["end"],
            "windows": len(run),
        },
        "label": top["label"],
        "index": top["index"],
        "score": round(float(np.mean([r["topk"][0]["score"] for r in run])), 6),
        "error": None,
    }
