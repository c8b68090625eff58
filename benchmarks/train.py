"""Training throughput (clips/s) and the share of step time spent waiting for data.

    python benchmarks/train.py                                  # CPU target (issue 5)
    python benchmarks/train.py --arch istpan_resnet50 --dataset synthetic --input-size 224 \\
        --amp off bf16 --device cuda --videos 512 --batch-size 32      # GPU target

Runs `ispan train`'s own engine for ``--epochs`` epochs per precision (no validation) and reports
the last epoch, so worker start-up is paid once per epoch as in real runs. Targets: CPU,
istpan_tiny, 2 workers, the synthetic *folder* dataset of real MP4 files: data wait <= 10% of
step time. GPU, istpan_resnet50 at 224, K=8: bf16 autocast + channels_last >= 1.8x fp32.
Random initial weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from ispan_cli.data.synth_writer import write_synthetic
from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.launch import TrainOptions, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="istpan_tiny")
    parser.add_argument("--dataset", default="folder", choices=["folder", "synthetic"])
    parser.add_argument("--data-root", help="an existing folder dataset (default: write one)")
    parser.add_argument("--videos", type=int, default=192, help="training clips")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--amp", nargs="+", default=["off"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if args.dataset == "folder" and root is None:
            root = str(Path(tmp) / "synth")
            write_synthetic(root, args.videos, 0)
        results = []
        for amp in args.amp:
            cfg = TrainConfig(
                dataset=args.dataset,
                data_root=root,
                arch=args.arch,
                pretrained="none",
                segments=args.segments,
                input_size=args.input_size,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=0.001,
                amp=amp,
                workers=args.workers,
                device=args.device,
                output=str(Path(tmp) / f"run-{amp}"),
                synthetic_train=args.videos,
                synthetic_val=0,
                dropout=0.5,
            )
            summary = run_training(TrainOptions(settings=cfg.to_dict()))
            last = summary.last
            results.append(
                {
                    "amp": amp,
                    "clips_per_s": round(last["clips_per_s"], 2),
                    "data_wait_share": round(last["data_wait_share"], 4),
                    "epoch_s": round(last["epoch_s"], 2),
                }
            )
    base = results[0]["clips_per_s"]
    for r in results:
        r["speedup_vs_first"] = round(r["clips_per_s"] / base, 2)
    device = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    )
    print(
        json.dumps(
            {
                "arch": args.arch,
                "dataset": args.dataset,
                "segments": args.segments,
                "batch_size": args.batch_size,
                "workers": args.workers,
                "device": device or args.device,
                "torch_threads": torch.get_num_threads(),
                "python": sys.version.split()[0],
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
