"""What one clip costs before the model, alone on the machine, and where that CPU goes.

    python benchmarks/clip_cost.py [--videos 24] [--seconds 2] [--profile] [--json]

The videos are the ones ``ispan benchmark`` generates (320x240 H.264, 25 fps); each is read as
``ispan benchmark`` and classify read it: ``load_clip`` (K = 8 TSN segment centres decoded at
the model's scale, one FFmpeg thread as the thread plan gives a decode worker, then the one
preprocessing to 224). Prints the median decode and preprocess ms a clip two ways: each clip
dropped before the next (as classify's pipeline frees a batch), and every clip kept (as
``ispan benchmark``'s serial pass keeps them for its model-only timing: each clip's 4.8 MB of
float32 is then fresh memory, and its page faults land in "preprocess"). ``--profile`` also
runs every clip under cProfile and prints the ms a clip spent in each of the main steps
(cProfile's own overhead included, so they add up to more than the medians).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
from pathlib import Path

from ispan_cli.video.clip import load_clip
from ispan_cli.video.preprocess import PreprocessSpec
from ispan_cli.video.synthetic import write_synthetic_video

SEGMENTS = 8
CODEC_THREADS = 1  # the thread plan's, per decode worker
# cProfile entries of the steps: (file name ending, function name) -> what the step is
STEPS = {
    ("", "<method 'decode' of 'av.packet.Packet' objects>"): "decoding packets",
    ("", "<method 'to_ndarray' of 'av.video.frame.VideoFrame' objects>"): "swscale",
    ("preprocess.py", "preprocess"): "preprocessing (crop, normalise)",
    ("", "<av.container.core.open>"): "opening the file",
    ("shape_base.py", "stack"): "stacking the frames",
}  # fmt: skip


def _steps(profile: cProfile.Profile, clips: int) -> dict[str, float]:
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tottime, cumtime, ...)}
    out = dict.fromkeys(STEPS.values(), 0.0)
    for (file, _, name), (_, _, tottime, cumtime, _) in stats.items():
        for (ending, fname), step in STEPS.items():
            if name == fname and file.endswith(ending):
                # a Python function's own work includes what it calls; a C one's is its own
                out[step] += (cumtime if ending else tottime) * 1e3 / clips
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    spec = PreprocessSpec()  # resize 256, crop 224: istpan_resnet50's
    with tempfile.TemporaryDirectory() as tmp:
        videos = [
            str(write_synthetic_video(Path(tmp) / f"v{i:03d}.mp4", args.seconds, seed=i))
            for i in range(args.videos)
        ]
        load_clip(videos[0], SEGMENTS, spec, "pyav", threads=CODEC_THREADS)  # warm-up
        # kept first, as in a fresh `ispan benchmark` process (the allocator's state after
        # freeing clips changes what fresh memory costs)
        kept = [load_clip(v, SEGMENTS, spec, "pyav", threads=CODEC_THREADS) for v in videos]
        kept_ms = [(c.decode_ms, c.preprocess_ms) for c in kept]
        del kept
        dropped = []
        for v in videos:
            clip = load_clip(v, SEGMENTS, spec, "pyav", threads=CODEC_THREADS)
            dropped.append((clip.decode_ms, clip.preprocess_ms))
            del clip
        result = {
            "videos": args.videos,
            "decode_ms": statistics.median(d for d, _ in dropped),
            "preprocess_ms": statistics.median(p for _, p in dropped),
            "kept_decode_ms": statistics.median(d for d, _ in kept_ms),
            "kept_preprocess_ms": statistics.median(p for _, p in kept_ms),
        }
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for v in videos:
                load_clip(v, SEGMENTS, spec, "pyav", threads=CODEC_THREADS)
            profile.disable()
            result["profiled_ms_per_clip"] = _steps(profile, len(videos))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.videos} clips, medians a clip: decode {result['decode_ms']:.1f} ms, preprocess "
        f"{result['preprocess_ms']:.1f} ms (each dropped before the next); every clip kept: "
        f"decode {result['kept_decode_ms']:.1f} ms, "
        f"preprocess {result['kept_preprocess_ms']:.1f} ms"
    )
    for step, ms in result.get("profiled_ms_per_clip", {}).items():
        print(f"  {step}: {ms:.1f} ms a clip (under cProfile)")


if __name__ == "__main__":
    sys.exit(main())
