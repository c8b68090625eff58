"""`ispan data check` throughput: videos/s with data-loader workers against a plain sequential
PyAV decode of the same frames, side by side in one run.

    python benchmarks/data_check.py [--files 200] [--workers 2] [--repeats 3] [--json]

Files are generated into a temporary folder (``synth_videos.encode``: textured background
scrolling under a moving square, 320x240 MPEG-4 part 2 AVI with B-frames and XviD's keyframe
interval, 4-10 s at 25 fps, so UCF101-like). Each file gets the 8 TSN centre frames at the
default model's frame size, decoded three ways, interleaved ``--repeats`` times (median):
  plain         one process: av.open, threaded decode forward to the last wanted frame, the
                wanted frames scaled to RGB (what a hand-written check script does)
  sequential    ispan_cli.data.check.check_videos with --workers 0 (the library path alone)
  data check    `ispan data check DIR --workers N --format json` in a subprocess: its own
                scan time (``seconds``), and the command's wall time including start-up
Issue 11 target: data check with 2 workers at least 1.6x the plain decode's videos/s on 2
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_videos import encode

from ispan_cli.data.check import _model_sampling, check_videos
from ispan_cli.video.preprocess import scaled_size

SEGMENTS = 8
ISPAN = str(Path(sys.executable).with_name("ispan"))


def _one(args: tuple[str, float, int]) -> str:
    path, seconds, seed = args
    encode(Path(path), seconds, 320, 240, "mpeg4", seed=seed)
    return path


def generate(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    jobs = [(str(folder / f"v_{i:04d}.avi"), float(rng.uniform(4, 10)), i) for i in range(n)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return [Path(p) for p in pool.map(_one, jobs)]


def plain(paths: list[Path], short_side: int) -> int:
    """Sequential PyAV: the TSN centre frames of each file; returns the frames decoded."""
    total = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = stream.frames
            wanted = set((n / SEGMENTS * np.arange(SEGMENTS) + n / (2 * SEGMENTS)).astype(int))
            w, h = scaled_size(stream.codec_context.width, stream.codec_context.height, short_side)
            got = 0
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    frame.reformat(w, h, format="rgb24").to_ndarray()
                    got += 1
                if got == len(wanted):
                    break
        if got != len(wanted):
            raise SystemExit(f"{path.name}: plain decode got {got} of {len(wanted)} frames")
        total += got
    return total


def sequential(paths: list[Path], short_side: int) -> None:
    report = check_videos([str(p) for p in paths], SEGMENTS, "auto", short_side, workers=0)
    if report.failed:
        raise SystemExit(f"the library check failed {len(report.failed)} files")


def data_check(folder: Path, workers: int, files: int) -> tuple[float, float]:
    """(scan seconds the command reports, wall seconds of the command)."""
    start = time.perf_counter()
    done = subprocess.run(
        [ISPAN, "data", "check", str(folder), "--segments", str(SEGMENTS), "--workers",
         str(workers), "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ispan data check failed ({done.returncode}): {done.stderr[-2000:]}")
    doc = json.loads(done.stdout)
    if doc["files"] != files or doc["failed"]:
        raise SystemExit(f"ispan data check saw {doc['files']} files, {doc['failed']} failed")
    return doc["seconds"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _, short_side = _model_sampling(None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = generate(folder, args.files)
        generated = time.perf_counter() - t0
        frames = plain(paths, short_side)  # warm the page cache before timing anything
        times: dict[str, list[float]] = {"plain": [], "sequential": [], "check": [], "wall": []}
        for _ in range(args.repeats):  # interleaved: every way sees the same machine state
            start = time.perf_counter()
            plain(paths, short_side)
            times["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sequential(paths, short_side)
            times["sequential"].append(time.perf_counter() - start)
            scan, wall = data_check(folder, args.workers, args.files)
            times["check"].append(scan)
            times["wall"].append(wall)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.files / v for k, v in med.items()}
    report = {
        "files": args.files,
        "frames": frames,
        "workers": args.workers,
        "cores": len(os.sched_getaffinity(0)),
        "short_side": short_side,
        "generate_s": generated,
        "seconds": med,
        "videos_per_s": rate,
        "check_vs_plain": rate["check"] / rate["plain"],
        "check_wall_vs_plain": rate["wall"] / rate["plain"],
        "check_vs_sequential": rate["check"] / rate["sequential"],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


def print_report(r: dict) -> None:
    print(
        f"{r['files']} UCF-like AVIs (320x240 MPEG-4, 4-10 s), {SEGMENTS} TSN centre frames "
        f"each at short side {r['short_side']}, median of runs; {r['cores']} usable cores; "
        f"generated in {r['generate_s']:.1f} s; PyAV {av.__version__}"
    )
    names = {
        "plain": "plain PyAV, sequential",
        "sequential": "check_videos, --workers 0",
        "check": f"ispan data check, --workers {r['workers']} (scan)",
        "wall": f"ispan data check, --workers {r['workers']} (wall, start-up included)",
    }
    for key, label in names.items():
        s, v = r["seconds"][key], r["videos_per_s"][key]
        print(f"{label:58} {s:7.2f} s {v:8.1f} videos/s {v / r['videos_per_s']['plain']:6.2f}x")
    ok = r["check_vs_plain"] >= 1.6
    print(
        f"{'PASS' if ok else 'FAIL'}  data check with {r['workers']} workers >= 1.6x the plain "
        f"sequential decode ({r['check_vs_plain']:.2f}x)"
    )


if __name__ == "__main__":
    main()
