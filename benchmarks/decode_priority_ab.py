"""A/B of the thread plan's ``decode_nice``, paired: one process loads istpan_resnet50 for torch,
ONNX Runtime and its int8 copy (as ``ispan benchmark --int8`` does), then, round after round and
runtime after runtime, times the model alone on the clips and the classify pipeline end to end
on their videos with the decode workers at the process's priority (nice 0) and below it
(nice 19: the scheduler gives the model's threads the cores first), in alternating order. Every
ratio compares passes seconds apart, so a change in the machine's speed hits both sides:

    python benchmarks/decode_priority_ab.py --batch 1 --rounds 3
    python benchmarks/decode_priority_ab.py --batch 4 --videos 16

Model-only is given two ways: from the median batch (as ``ispan benchmark`` reports it) and
from the whole pass (the mean, as end to end is measured). Prints one JSON line per pass and,
last, per runtime and setting the median over rounds of end to end / model-only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import ispan_cli.inference.pipeline as pipeline
from ispan_cli.bench.run import (
    BenchmarkOptions,
    _decode,
    _EndToEnd,
    _export,
    _int8_file,
    _predictor,
)
from ispan_cli.runtime.loading import load_model
from ispan_cli.runtime.threads import apply_torch_threads, plan_threads
from ispan_cli.video.synthetic import write_synthetic_video

_NICE = {"value": 0}
_done = threading.local()
_load_clip = pipeline.load_clip


def _load_clip_at_nice(*args):
    """The pipeline's decoding, its worker thread first lowered to ``_NICE`` (Linux keeps
    niceness per thread; each run's pool has new threads, started at the process's)."""
    if _NICE["value"] and not getattr(_done, "set", False):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, _NICE["value"])
        _done.set = True
    return _load_clip(*args)


def _model_pass(predictor, clips, batch: int) -> tuple[float, float]:
    """(median, mean) seconds per video of ``predict`` over the clips in batches."""
    times, total = [], 0.0
    for i in range(0, len(clips), batch):
        chunk = np.stack(clips[i : i + batch])
        start = time.perf_counter()
        predictor.predict(chunk)
        took = time.perf_counter() - start
        times.append(took / len(chunk))
        total += took
    return statistics.median(times), total / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", default="torch,onnx,onnx-int8")
    args = parser.parse_args()
    pipeline.load_clip = _load_clip_at_nice
    plan = plan_threads()
    apply_torch_threads(plan)
    options = BenchmarkOptions(
        model="istpan_resnet50", threads=plan.model_threads, batch_size=args.batch,
        workers=plan.decode_workers, codec_threads=plan.codec_threads,
    )  # fmt: skip
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ispan-ab-") as name:
        tmp = Path(name)
        videos = [write_synthetic_video(tmp / f"v{i}.mp4", 2.0, seed=i) for i in range(args.videos)]
        loaded = load_model("istpan_resnet50", device="cpu", allow_registry=True)
        model, doc, identity = loaded.model, loaded.document, loaded.identity
        spec = replace(loaded.preprocessing, crops=1)
        k = int(doc["model"].get("num_segments", 8))
        clips, decode_ms, _ = _decode(videos, k, spec, "auto", plan.codec_threads)
        onnx_path = _export(model, doc, identity, tmp, lambda _: None)
        end_to_end = _EndToEnd(videos, k, spec, options)
        predictors = {}
        for runtime in args.runtimes.split(","):
            path = onnx_path
            if runtime == "onnx-int8":
                path = _int8_file(onnx_path, clips, spec, options, tmp, lambda _: None)
            predictors[runtime] = _predictor(runtime, model, identity, spec, path, options, True)
            predictors[runtime].predict(clips[0][None])  # warm-up
        for r in range(args.rounds):
            for runtime, predictor in predictors.items():
                median, mean = _model_pass(predictor, clips, args.batch)
                row = {"round": r, "runtime": runtime, "batch": args.batch,
                       "model_median_s": median, "model_mean_s": mean}  # fmt: skip
                for nice in (0, 19) if r % 2 == 0 else (19, 0):
                    _NICE["value"] = nice
                    e2e, failed = end_to_end.run(predictor)
                    assert not failed, failed
                    row[f"e2e_nice{nice}_s"] = e2e
                    for base, model_s in (("median", median), ("mean", mean)):
                        key = f"{runtime} nice {nice} / model {base}"
                        ratios.setdefault(key, []).append(model_s / e2e)
                print(json.dumps(row), flush=True)
    summary = {key: round(statistics.median(v), 3) for key, v in sorted(ratios.items())}
    print(json.dumps({"batch": args.batch, "decode_ms": decode_ms, "plan": plan.to_dict(),
                      "median_ratio_end_to_end_over_model": summary}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
