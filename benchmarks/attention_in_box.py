"""Where a trained istpan_tiny looks: attention mass inside the synthetic target's box.

    python -m benchmarks.attention_in_box                # output_norm off vs on, seed 0
    python -m benchmarks.attention_in_box --variants output_norm=false \\
        "output_norm=false attention_warmup=0.5" output_norm=true --seeds 0 1 2

Each variant (space-separated TrainConfig settings) is trained with the learning check's recipe
(tests/engine/test_learning.py: 400 synthetic clips, K=4, 6 epochs, about 1-2 minutes on 2
cores) for every seed, then scored on 60 validation clips by the test's own ``score_run``. Prints
accuracy and, for the fused map and each pyramid level's own map, the mean share of the
attention mass inside the target's box next to what a uniform map puts there. Run from the
repository root (it imports the test module). ``--score DIR ... [--val N]`` scores existing
model folders the same way instead of training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.trainer import train
from tests.engine.test_learning import RECIPE, score_run


def _parse(variant: str) -> dict:
    out = {}
    for item in variant.split():
        key, value = item.split("=", 1)
        out[key] = json.loads(value)
    return out


def _report(name: str, score: dict) -> None:
    levels = " ".join(f"{k} {v:.4f}" for k, v in score.items() if k.startswith("level"))
    print(
        f"{name:40s}  top-1 {score['accuracy']:.2f}  uniform {score['uniform']:.4f}  "
        f"fused {score['fused']:.4f} ({score['fused'] / score['uniform']:.2f}x)  {levels}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["output_norm=false", "output_norm=true"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--score", nargs="+", metavar="MODEL_DIR", help="score these model folders, train nothing"
    )
    parser.add_argument("--val", type=int, default=60, help="validation clips to score")
    args = parser.parse_args()
    if args.score:
        for folder in args.score:
            _report(folder, score_run(Path(folder), val=args.val))
        return
    runs = [(variant, seed) for variant in args.variants for seed in args.seeds]
    with tempfile.TemporaryDirectory(prefix="ispan-attn-") as tmp:
        for n, (variant, seed) in enumerate(runs):
            out = Path(tmp) / str(n)
            train(TrainConfig(**{**RECIPE, "seed": seed, "output": str(out)}, **_parse(variant)))
            _report(f"{variant} seed {seed}", score_run(out / "best", val=args.val))


if __name__ == "__main__":
    main()
