"""Where the CPU goes in a classify job: CPU-seconds per video of the model alone, of decoding
and preprocessing alone, and of the pipeline end to end, per runtime and batch size (issue 18).

    python benchmarks/cpu_budget.py [--arch istpan_resnet50] [--runtimes torch,onnx,onnx-int8]
        [--batch 1,4] [--videos 8]

Process CPU time (user + sys, every thread, live or exited) is what a loaded, shared machine
does not distort much, unlike wall-clock ratios: if end to end costs more CPU than the model plus
decoding, something spins or oversubscribes. Also reported: the threads alive during each phase
and how many were running on average (sampled from /proc every 20 ms), and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_videos import encode


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ThreadSampler:
    """Counts this process's threads (alive, running) every ``period`` seconds."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.alive, self.running = period, [], []
        self._stop = threading.Event()

    def __enter__(self) -> ThreadSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        me = threading.get_native_id()
        while not self._stop.wait(self.period):
            alive = running = 0
            for tid in os.listdir("/proc/self/task"):
                if int(tid) == me:
                    continue
                try:
                    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
                except OSError:
                    continue
                alive += 1
                running += stat.rsplit(")", 1)[1].split()[0] == "R"
            self.alive.append(alive)
            self.running.append(running)

    def summary(self) -> dict:
        if not self.alive:
            return {}
        return {
            "threads_max": max(self.alive),
            "running_mean": round(float(np.mean(self.running)), 2),
        }


def phase(name: str, n: int, fn, *args) -> dict:
    with ThreadSampler() as sampler:
        cpu, wall = _cpu(), time.perf_counter()
        fn(*args)
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    out = {
        "cpu_s_per_video": round(cpu / n, 4),
        "wall_s_per_video": round(wall / n, 4),
        "cores_busy": round(cpu / wall, 2),
        **sampler.summary(),
    }
    print(f"  {name}: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def _predict_all(predictor, batches) -> None:
    for batch in batches:
        predictor.predict(batch)


def _drain(records) -> None:
    for _ in records:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="istpan_resnet50")
    parser.add_argument("--runtimes", default="torch,onnx,onnx-int8")
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--threads", type=int, default=0, help="model threads; 0: the plan's")
    parser.add_argument("--workers", type=int, default=-1, help="decode workers; -1: the plan's")
    parser.add_argument(
        "--ffmpeg-threads",
        type=int,
        default=-1,
        help="codec threads per decode (what PyAVReader(threads=) gets); -1: ispan's own choice",
    )
    args = parser.parse_args()
    if args.ffmpeg_threads >= 0:
        import ispan_cli.video.pyav_backend as pyav_backend

        opened = pyav_backend.PyAVReader.__init__

        def fixed(self, path, threads=0, stream=None):
            opened(self, path, args.ffmpeg_threads, stream)

        pyav_backend.PyAVReader.__init__ = fixed

    from ispan_cli.bench.run import BenchmarkOptions, _export, _int8_file, _predictor
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions, run_classify
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.runtime.threads import apply_torch_threads, plan_threads
    from ispan_cli.video.clip import load_clip

    plan = plan_threads(False, workers=None if args.workers < 0 else args.workers,
                        threads=args.threads or None)  # fmt: skip
    apply_torch_threads(plan)  # before torch is imported: OMP_WAIT_POLICY when the plan says
    results: dict = {
        "plan": plan.to_dict(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "ffmpeg_threads": args.ffmpeg_threads,
        "load_before": os.getloadavg(),
        "runs": [],
    }
    print(json.dumps(plan.to_dict()), file=sys.stderr)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        videos = [
            str(encode(tmp / f"v{i:02d}.mp4", args.seconds, w, h, "libx264", seed=i))
            for i in range(args.videos)
        ]
        loaded = load_model(args.arch, device="cpu", allow_registry=True)
        model, doc, identity = loaded.model, loaded.document, loaded.identity
        spec = replace(loaded.preprocessing, crops=1)
        k = int(doc["model"].get("num_segments", 8))
        load_clip(videos[0], k, spec, "auto")  # imports, first-open costs
        clips: list = []
        results["decode_preprocess"] = phase(
            "decode+preprocess, serial",
            len(videos),
            lambda: clips.extend(load_clip(v, k, spec, "auto").data for v in videos),
        )
        options = BenchmarkOptions(
            model=args.arch,
            device="cpu",
            threads=plan.model_threads,
            workers=plan.decode_workers,
            seconds=args.seconds,
        )
        onnx_path = None
        for runtime in args.runtimes.split(","):
            path = None
            if runtime != "torch":
                onnx_path = onnx_path or _export(model, doc, identity, tmp, lambda m: None)
                path = onnx_path
                if runtime == "onnx-int8":
                    path = _int8_file(onnx_path, clips, spec, options, tmp, lambda m: None)
            predictor = _predictor(runtime, model, identity, spec, path, options, plan.spin)
            for batch in (int(b) for b in args.batch.split(",")):
                print(f"{runtime} batch {batch}", file=sys.stderr)
                batches = [np.stack(clips[i : i + batch]) for i in range(0, len(clips), batch)]
                predictor.predict(batches[0])  # warm-up
                model_only = phase("model", len(clips), _predict_all, predictor, batches)
                classify = ClassifyOptions(
                    segments=k, topk=1, batch_size=batch, workers=plan.decode_workers
                )
                items = [InputItem(v) for v in videos]
                e2e = phase(
                    "end to end", len(videos), _drain, run_classify(predictor, items, classify)
                )
                dec = results["decode_preprocess"]
                results["runs"].append(
                    {
                        "runtime": runtime,
                        "batch": batch,
                        "model": model_only,
                        "end_to_end": e2e,
                        "excess_cpu_s": round(
                            e2e["cpu_s_per_video"]
                            - model_only["cpu_s_per_video"]
                            - dec["cpu_s_per_video"],
                            4,
                        ),
                        "wall_ratio": round(
                            model_only["wall_s_per_video"] / e2e["wall_s_per_video"], 3
                        ),
                    }
                )
            del predictor
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
