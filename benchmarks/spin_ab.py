"""A/B of the thread plan's ``spin``: `ispan benchmark`'s measurement (model-only and end to end
on the same videos) with the model's idle threads spinning or not, one runtime per run:

    SPIN=1 OMP_WAIT_POLICY=ACTIVE  python benchmarks/spin_ab.py torch 1
    SPIN=0 OMP_WAIT_POLICY=PASSIVE python benchmarks/spin_ab.py torch 1
    SPIN=1|0 python benchmarks/spin_ab.py onnx|onnx-int8 1

SPIN forces the plan's ``spin`` (ONNX Runtime's allow_spinning); torch reads OMP_WAIT_POLICY
once, when it is imported, so it is set in the environment. Prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import ispan_cli.runtime.threads as threads
from ispan_cli.bench.run import BenchmarkOptions, run_benchmark

_plan = threads.plan_threads


def _forced(*args, **kwargs):
    return dataclasses.replace(_plan(*args, **kwargs), spin=os.environ["SPIN"] == "1")


def main() -> None:
    threads.plan_threads = _forced  # run_benchmark looks it up when it runs
    runtime, batch = sys.argv[1], int(sys.argv[2])
    wanted = ("onnx", "onnx-int8") if runtime == "onnx-int8" else (runtime,)
    options = BenchmarkOptions(
        model="istpan_resnet50", runtimes=wanted, count=6 * batch, seconds=2.0, batch_size=batch
    )
    for r in run_benchmark(options).to_dict()["runtimes"]:
        if r["runtime"] == runtime:
            print(json.dumps({
                "runtime": runtime, "batch": batch, "spin": os.environ["SPIN"],
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "end_to_end_videos_per_s": r["end_to_end_videos_per_s"],
                "model_videos_per_s": r["model_videos_per_s"],
                "ratio": r["end_to_end_over_model"],
            }))  # fmt: skip


if __name__ == "__main__":
    main()
