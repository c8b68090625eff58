"""Decoding speed and memory: three ways of fetching 8 TSN segment frames, side by side.

    python benchmarks/decode.py [--repeats 3] [--long-minutes 60] [--quick] [--json]

Files are generated into a temporary folder (textured background scrolling under a moving
square, so every frame changes and the encoder uses P- and B-frames; encoder keyframe intervals
are the encoders' usual defaults: XviD-like 300 for MPEG-4 part 2, x264's 250):
  ucf-like.avi    7 s 320x240 MPEG-4 part 2 AVI (UCF101-like)
  hd.mp4          5 s 1280x720 H.264 MP4
  long.avi        5 min 320x240 MPEG-4 part 2 AVI
  long.mp4        5 min 320x240 H.264 MP4
Strategies, all with FFmpeg's threaded decoding, all returning RGB frames at full size:
  decode-all      decode every frame to RGB, then pick (what the peers' demos do)
  seek-per-frame  for each wanted frame: seek to the keyframe before it, decode up to it
  adaptive        ispan_cli.video (open + packet scan + planned fetch), the library's path
Issue 3 targets: adaptive within 1.2x of the faster fixed strategy on every file; >= 20x faster
than decode-all on the 5-minute files; peak RSS < 500 MB sampling 8 frames from a one-hour
1280x720 video (measured in a fresh process; the long file is one encoded 10 s unit whose
packets are repeated with shifted timestamps, a valid file built in seconds).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from ispan_cli.video import TSNSampler, open_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_videos import encode, repeat_packets

SEGMENTS = 8


# -- strategies -------------------------------------------------------------------------------
def decode_all(path: Path, wanted: list[int]) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return np.stack([frames[i] for i in wanted])


def seek_per_frame(path: Path, wanted: list[int], pts: list[int]) -> np.ndarray:
    """``pts``: every frame's timestamp, given for free (a naive i / fps is off by one frame on
    the MPEG-4 AVI, whose first timestamp is 1)."""
    out = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i in sorted(set(wanted)):
            container.seek(pts[i], stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= pts[i]:
                    out[i] = frame.to_ndarray(format="rgb24")
                    break
    return np.stack([out[i] for i in wanted])


def adaptive(path: Path, wanted: list[int]) -> np.ndarray:
    with open_video(path, "pyav") as reader:
        return reader.read(wanted)


STRATEGIES = {"decode-all": decode_all, "seek-per-frame": seek_per_frame, "adaptive": adaptive}
"""name -> fn(path, wanted indices) -> (len(wanted), H, W, 3) uint8 frames"""


def tsn_indices(path: Path) -> tuple[list[int], int, int]:
    with open_video(path, "pyav") as reader:
        info = reader.info()
        idx = TSNSampler(SEGMENTS).sample(reader.frame_times()).indices[0].tolist()
    return idx, info.num_frames, info.keyframes or 0


def packet_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(p.pts for p in container.demux(stream) if p.size)


def time_file(path: Path, repeats: int) -> dict:
    wanted, n, keys = tsn_indices(path)
    strategies = dict(STRATEGIES)
    pts = packet_pts(path)
    strategies["seek-per-frame"] = lambda p, w: seek_per_frame(p, w, pts)
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    results = {}
    for _ in range(repeats):  # interleaved, so all strategies see the same machine state
        for name, fn in strategies.items():
            if name == "decode-all" and times[name] and n > 2000:
                continue  # seconds per run and ~1.7 GB of RGB frames: once is enough
            start = time.perf_counter()
            results[name] = fn(path, wanted)
            times[name].append(time.perf_counter() - start)
    for name in STRATEGIES:  # the three must return the same pixels
        if not np.array_equal(results[name], results["decode-all"]):
            raise SystemExit(f"{path.name}: {name} returned different frames than decode-all")
    med = {name: statistics.median(t) for name, t in times.items()}
    best_fixed = min(med["decode-all"], med["seek-per-frame"])
    return {
        "file": path.name,
        "frames": n,
        "keyframes": keys,
        "seconds": med,
        "adaptive_vs_best_fixed": med["adaptive"] / best_fixed,
        "decode_all_vs_adaptive": med["decode-all"] / med["adaptive"],
    }


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(path: str) -> None:
    """Runs in a fresh process: peak RSS of sampling 8 frames (the library path)."""
    before = _peak_rss_mb()
    start = time.perf_counter()
    with open_video(path, "pyav") as reader:
        info = reader.info()
        idx = TSNSampler(SEGMENTS).sample(reader.frame_times()).indices[0]
        frames = reader.read(idx)
    seconds = time.perf_counter() - start
    peak = _peak_rss_mb()
    print(
        json.dumps(
            {
                "peak_rss_mb": peak,
                "rss_after_imports_mb": before,
                "seconds": seconds,
                "frames": info.num_frames,
                "duration_s": info.duration,
                "shape": list(frames.shape),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="30 s 'long' files, 5 min RSS file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    long_s = 30.0 if args.quick else 300.0
    long_minutes = 5.0 if args.quick else args.long_minutes
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        files = [
            encode(d / "ucf-like.avi", 7, 320, 240, "mpeg4"),
            encode(d / "hd.mp4", 5, 1280, 720, "libx264"),
            encode(d / "long.avi", long_s, 320, 240, "mpeg4"),
            encode(d / "long.mp4", long_s, 320, 240, "libx264"),
        ]
        unit = encode(d / "unit.mp4", 10, 1280, 720, "libx264", smooth=True)
        hour = repeat_packets(unit, d / "hour.mp4", round(long_minutes * 6))
        generated = time.perf_counter() - t0
        rows = [time_file(f, args.repeats) for f in files]
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(hour)],
            capture_output=True,
            text=True,
            check=True,
        )
        rss = json.loads(child.stdout)
        rss["file_mb"] = hour.stat().st_size / 2**20
    report = {
        "rows": rows,
        "rss": rss,
        "generate_s": generated,
        "long_file_s": long_s,
        "segments": SEGMENTS,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


def print_report(report: dict) -> None:
    print(
        f"{SEGMENTS} TSN segment frames per file, median of runs; files generated in "
        f"{report['generate_s']:.1f} s; PyAV {av.__version__}, "
        f"FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}"
    )
    head = (
        f"{'file':14} {'frames':>6} {'keys':>4} {'decode-all':>11} {'seek/frame':>11} "
        f"{'adaptive':>9} {'adapt/best':>10} {'all/adapt':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        s = r["seconds"]
        print(
            f"{r['file']:14} {r['frames']:>6} {r['keyframes']:>4} {s['decode-all']:>10.3f}s "
            f"{s['seek-per-frame']:>10.3f}s {s['adaptive']:>8.3f}s "
            f"{r['adaptive_vs_best_fixed']:>9.2f}x {r['decode_all_vs_adaptive']:>8.1f}x"
        )
    rss = report["rss"]
    print(
        f"peak RSS sampling {SEGMENTS} frames from a {rss['duration_s'] / 60:.1f} min "
        f"1280x720 H.264 file ({rss['frames']} frames, {rss['file_mb']:.0f} MB): "
        f"{rss['peak_rss_mb']:.0f} MB (after imports {rss['rss_after_imports_mb']:.0f} MB), "
        f"{rss['seconds']:.2f} s"
    )
    long_rows = [r for r in report["rows"] if r["file"].startswith("long")]
    checks = [
        (
            "adaptive within 1.2x of the faster fixed strategy, every file",
            all(r["adaptive_vs_best_fixed"] <= 1.2 for r in report["rows"]),
        ),
        (
            f">= 20x faster than decode-all on the {report['long_file_s'] / 60:g}-minute files",
            all(r["decode_all_vs_adaptive"] >= 20 for r in long_rows),
        ),
        ("peak RSS < 500 MB", rss["peak_rss_mb"] < 500),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
