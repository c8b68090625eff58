"""End-to-end speed of `ispan classify` against the model alone, and memory in timeline mode.

    python benchmarks/classify.py [--arch istpan_resnet50] [--videos 20] [--long-minutes 60]

Measured side by side in one run (issue 4 targets):
1. a folder of short videos: end-to-end videos/s >= 0.85 x model-only videos/s, same batch size;
2. a 7 s 320x240 MPEG-4 AVI (UCF101-like): decode + preprocess + bookkeeping per video, as a
   share of the model's time (target < 10% for istpan_resnet50, 8 segments);
3. timeline mode over a long 1280x720 video: peak RSS of the whole `ispan classify` process
   (target < 1.5 GB for one hour with istpan_resnet50).
Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_videos import encode, write_long

from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.pipeline import ClassifyOptions, run_classify
from ispan_cli.nn import create_model, save_model
from ispan_cli.runtime.loading import load_predictor
from ispan_cli.video.clip import load_clip


def folder_throughput(predictor, paths, options, rounds: int) -> dict:
    spec = predictor.preprocessing
    clips = [load_clip(str(p), options.segments, spec, options.decoder).data for p in paths]
    model_times, e2e_times = [], []
    for _ in range(rounds):  # interleaved, best of each: both see the same machine state
        start = time.perf_counter()
        for i in range(0, len(clips), options.batch_size):
            predictor.predict(np.stack(clips[i : i + options.batch_size]))
        model_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        records = list(run_classify(predictor, [InputItem(str(p)) for p in paths], options))
        e2e_times.append(time.perf_counter() - start)
        assert all(r["error"] is None for r in records), records
    model_vps, e2e_vps = len(paths) / min(model_times), len(paths) / min(e2e_times)
    return {
        "videos": len(paths),
        "model_videos_per_s": model_vps,
        "end_to_end_videos_per_s": e2e_vps,
        "ratio": e2e_vps / model_vps,
        "target_met": e2e_vps / model_vps >= 0.85,
    }


def per_video_overhead(predictor, path, options, repeats: int) -> dict:
    spec = predictor.preprocessing
    overhead, model = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        clip = load_clip(str(path), options.segments, spec, options.decoder)
        record_start = time.perf_counter()
        predictor.predict(clip.data[None])
        model.append(time.perf_counter() - record_start)
        overhead.append(record_start - start)
    o, m = statistics.median(overhead) * 1e3, statistics.median(model) * 1e3
    return {"overhead_ms": o, "model_ms": m, "share": o / m, "target_met": o / m < 0.10}


# Runs `ispan classify` and reports the process's own peak RSS (VmHWM) on exit: ru_maxrss of a
# child would include the (large) benchmark process it was forked from.
_PEAK_RSS_RUNNER = """
import atexit, sys
def _report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("PEAK_RSS_KB", line.split()[1], file=sys.stderr)
atexit.register(_report)
sys.argv = ["ispan", *sys.argv[1:]]
from ispan_cli.app import main
main()
"""


def timeline_memory(model_dir: Path, video: Path, window: float) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_RUNNER, "classify", str(video), "--model",
         str(model_dir), "--window", str(window), "--device", "cpu", "-q", "-f", "jsonl"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    peak_kb = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS")
    )
    windows = len(done.stdout.splitlines())
    return {
        "windows": windows,
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "target_met": peak_kb / 1024 < 1536,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="istpan_resnet50")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--long-minutes",
        type=float,
        default=60.0,
        help="length of the timeline-mode video; 0 skips part 3",
    )
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument(
        "--parts",
        default="folder,overhead,timeline",
        help="comma-separated subset of folder,overhead,timeline",
    )
    args = parser.parse_args()

    results: dict = {"arch": args.arch, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model_dir = save_model(create_model(args.arch, num_classes=101), tmp / "model")
        predictor = load_predictor(str(model_dir), device=args.device)
        results["device"] = predictor.device
        options = ClassifyOptions(
            segments=predictor.num_segments, batch_size=args.batch_size, workers=args.workers
        )
        parts = set(args.parts.split(","))
        if "folder" in parts:
            folder = [
                encode(tmp / f"v{i:02d}.mp4", 4.0, 320, 240, "libx264", seed=i)
                for i in range(args.videos)
            ]
            results["folder"] = folder_throughput(predictor, folder, options, args.rounds)
        if "overhead" in parts:
            avi = encode(tmp / "ucf_like.avi", 7.0, 320, 240, "mpeg4")
            results["ucf_like_overhead"] = per_video_overhead(predictor, avi, options, 5)
        if "timeline" in parts and args.long_minutes > 0:
            long_video = write_long(tmp / "long.mp4", args.long_minutes, 1280, 720)
            results["timeline"] = {
                "minutes": args.long_minutes,
                "window_s": args.window,
                **timeline_memory(model_dir, long_video, args.window),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
