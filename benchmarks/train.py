"""Training throughput (clips/s) and the share of step time spent waiting for data.

    python benchmarks/train.py                                  # CPU target (issue 5)
    python benchmarks/train.py --arch istpan_resnet50 --dataset synthetic --input-size 224 \\
        --amp off bf16 --device cuda --videos 512 --batch-size 32      # GPU target
    python benchmarks/train.py --log none tensorboard,mlflow --val-videos 20 --repeats 3
                                                                # tracker overhead (issue 17)

Runs `ispan train`'s own engine for ``--epochs`` epochs per precision (validation only with
``--val-videos``) and reports the last epoch, so worker start-up is paid once per epoch as in
real runs. Targets: CPU, istpan_tiny, 2 workers, the synthetic *folder* dataset of real MP4
files: data wait <= 10% of step time. GPU, istpan_resnet50 at 224, K=8: bf16 autocast +
channels_last >= 1.8x fp32.
Trackers (``--log``): at most 3% of step time; each setting runs ``--repeats`` times, interleaved
with the others so that a busy machine slows them alike, and the median is reported. The
overhead is measured inside the run, unblurred by other load: ``tracker_share`` is the time
inside the tracker calls during the steps over the step time; ``tracker_eval_share`` the time of
the end-of-evaluation logging (the confusion matrix and the attention overlays, drawn and
uploaded: needs ``--val-videos``) over the same step time; ``tracker_overhead`` their sum.
MLflow without ``MLFLOW_TRACKING_URI`` writes to a SQLite store in each run folder.
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
    parser.add_argument("--val-videos", type=int, default=0,
                        help="validation clips: evaluated each epoch (tracker images)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--amp", nargs="+", default=["off"], choices=["off", "bf16", "fp16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log", nargs="+", default=["none"],
                        help="tracker settings to compare, e.g. none tensorboard")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if args.dataset == "folder" and root is None:
            root = str(Path(tmp) / "synth")
            write_synthetic(root, args.videos, args.val_videos)
        runs: dict[tuple[str, str], list[dict]] = {}
        for repeat in range(args.repeats):
            for amp in args.amp:
                for trackers in args.log:
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
                        output=str(Path(tmp) / f"run-{amp}-{trackers}-{repeat}"),
                        synthetic_train=args.videos,
                        synthetic_val=args.val_videos,
                        dropout=0.5,
                        log="" if trackers == "none" else trackers,
                    )
                    summary = run_training(TrainOptions(settings=cfg.to_dict()))
                    rows = [
                        json.loads(line)
                        for line in (Path(cfg.output) / "metrics.jsonl").read_text().splitlines()
                    ]
                    last = {**summary.last, "run_eval_share": _run_eval_share(rows)}
                    runs.setdefault((amp, trackers), []).append(last)
        results = []
        for (amp, trackers), lasts in runs.items():
            lasts = sorted(lasts, key=lambda r: r["clips_per_s"])
            last = lasts[len(lasts) // 2]  # the median run
            results.append(
                {
                    "amp": amp,
                    "log": trackers,
                    "clips_per_s": round(last["clips_per_s"], 2),
                    "data_wait_share": round(last["data_wait_share"], 4),
                    "epoch_s": round(last["epoch_s"], 2),
                    "runs": len(lasts),
                    # time inside the tracker calls over step time, measured in the same steps:
                    # unlike the clips/s ratio, not blurred by other load on the machine
                    "tracker_share": round(max(r.get("tracker_share", 0.0) for r in lasts), 4),
                    "tracker_eval_share": round(max(_eval_share(r) for r in lasts), 4),
                    "tracker_overhead": round(
                        max(r.get("tracker_share", 0.0) + _eval_share(r) for r in lasts), 4
                    ),
                    # the images are drawn within a share of the whole run (IMAGE_SHARE), not at
                    # every evaluation: their time over all epochs' step time
                    "tracker_eval_share_run": round(max(r["run_eval_share"] for r in lasts), 4),
                    "tracker_overhead_run": round(
                        max(r.get("tracker_share", 0.0) + r["run_eval_share"] for r in lasts), 4
                    ),
                }
            )
    base = results[0]["clips_per_s"]
    for r in results:
        r["speedup_vs_first"] = round(r["clips_per_s"] / base, 2)
        if len(args.log) > 1:  # step time with the trackers over step time without, same amp
            plain = next(x for x in results if x["amp"] == r["amp"] and x["log"] == args.log[0])
            r["step_time_vs_first_log"] = round(plain["clips_per_s"] / r["clips_per_s"], 3)
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


def _run_eval_share(rows: list[dict]) -> float:
    """End-of-evaluation tracker time over the step time of every epoch of the run."""
    steps = sum(r.get("epoch_s", 0.0) for r in rows)
    return sum(r.get("tracker_eval_s", 0.0) for r in rows) / steps if steps else 0.0


def _eval_share(row: dict) -> float:
    """End-of-evaluation tracker time over the epoch's step time."""
    return row.get("tracker_eval_s", 0.0) / row["epoch_s"] if row.get("epoch_s") else 0.0


if __name__ == "__main__":
    main()
