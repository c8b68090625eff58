"""`ispan flow extract` throughput against a bare loop calling OpenCV's TV-L1, in one run.

    python -m benchmarks.flow                       # 4 clips of 12 frames, 160x120
    python -m benchmarks.flow --videos 6 --frames 16 --size 320x240 --json

Writes generated clips (the synthetic texture-and-square videos, H.264), then times on the same
frames: (1) the bare loop: frames decoded beforehand (not timed), converted to grey and passed
to ``cv2.optflow.DualTVL1OpticalFlow`` pair by pair, with OpenCV's default threads and with one
thread; (2) ``run_flow_extract`` (the library call the command makes: decoding, flow,
quantisation, JPEG writing, the record) with 1 and 2 workers, TV-L1 and DIS. The unit is flows
(frame pairs) per second; each row also gives user + system CPU seconds per flow (the workers'
included), which stays comparable on a loaded machine where flows/s does not. Targets (issue
16): TV-L1 with 1 worker at least 0.9x the bare loop, 2 workers at least 1.7x on 2 cores, DIS at
least 10x TV-L1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ispan_cli.flow.batch import FlowOptions, run_flow_extract
from ispan_cli.video import open_video
from ispan_cli.video.synthetic import write_synthetic_video


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (the workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bare_loop(videos: list[Path], threads: int | None) -> tuple[int, float, float]:
    """(flows, seconds, CPU seconds) of OpenCV's TV-L1 alone on every pair of every video."""
    frames = []
    for path in videos:
        with open_video(path) as reader:
            n = reader.info().num_frames
            frames.append([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in reader.read(range(n))])
    default = cv2.getNumThreads()
    if threads is not None:
        cv2.setNumThreads(threads)
    try:
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        start, cpu = time.perf_counter(), cpu_seconds()
        flows = 0
        for grays in frames:
            for a, b in itertools.pairwise(grays):
                algo.calc(a, b, None)
                flows += 1
        return flows, time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        cv2.setNumThreads(default)


def ours(videos: list[Path], out: Path, method: str, workers: int) -> tuple[int, float, float]:
    """(flows, seconds, CPU seconds, the workers' included) of ``run_flow_extract``."""
    start, cpu = time.perf_counter(), cpu_seconds()
    report = run_flow_extract(
        FlowOptions(str(out), tuple(str(v) for v in videos), method=method, workers=workers)
    )
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    failed = report.failed
    if failed:
        raise SystemExit(f"extraction failed: {failed[0].message}")
    return sum(r.frames - 1 for r in report.results), seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [
            write_synthetic_video(
                tmp / f"clip{i}.mp4", args.frames / 25, width, height, fps=25, seed=i
            )
            for i in range(args.videos)
        ]
        rows: dict[str, tuple[int, float, float]] = {}
        rows["bare TV-L1 loop, OpenCV default threads"] = bare_loop(videos, None)
        rows["bare TV-L1 loop, 1 OpenCV thread"] = bare_loop(videos, 1)
        for method, workers in (("tvl1", 1), ("tvl1", 2), ("dis", 1)):
            out = tmp / f"{method}-{workers}"
            rows[f"ispan flow extract --method {method} --workers {workers}"] = ours(
                videos, out, method, workers
            )
    fps = {name: flows / seconds for name, (flows, seconds, _) in rows.items()}
    cpu = {name: cpu / flows for name, (flows, _, cpu) in rows.items()}
    bare = fps["bare TV-L1 loop, OpenCV default threads"]
    tvl1_1 = fps["ispan flow extract --method tvl1 --workers 1"]
    ratios = {
        "tvl1_1_worker_vs_bare": tvl1_1 / bare,
        "tvl1_2_workers_vs_bare": fps["ispan flow extract --method tvl1 --workers 2"] / bare,
        "dis_vs_tvl1_1_worker": fps["ispan flow extract --method dis --workers 1"] / tvl1_1,
    }
    doc = {
        "videos": args.videos,
        "frames": args.frames,
        "size": f"{width}x{height}",
        "cores": len(os.sched_getaffinity(0)),
        "opencv": cv2.__version__,
        "flows_per_s": {k: round(v, 3) for k, v in fps.items()},
        # user + system CPU seconds per flow, workers included: comparable under load, when
        # flows/s is not
        "cpu_s_per_flow": {k: round(v, 4) for k, v in cpu.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": {
            "tvl1_1_worker_vs_bare": 0.9,
            "tvl1_2_workers_vs_bare": 1.7,
            "dis_vs_tvl1_1_worker": 10,
        },
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(
        f"{args.videos} clips x {args.frames} frames at {width}x{height}, "
        f"{doc['cores']} cores, OpenCV {cv2.__version__}"
    )
    for name, (flows, seconds, _) in rows.items():
        print(f"  {name:48s} {flows:5d} flows {seconds:7.2f} s {fps[name]:8.2f} flows/s "
              f"{cpu[name]:7.3f} CPU s/flow")  # fmt: skip
    for key, value in ratios.items():
        target = doc["targets"][key]
        verdict = "ok" if value >= target else "BELOW TARGET"
        print(f"  {key:48s} {value:6.2f}x (target >= {target}x) {verdict}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
