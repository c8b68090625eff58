"""``ispan train``: parse options, build a TrainConfig, run the training engine, render."""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.engine.config import ATTENTION_LR, ATTENTION_WARMUP, DEFAULT_MAX_SKIPPED
from ispan_cli.errors import UsageError


class DatasetName(str, Enum):
    ucf101 = "ucf101"
    hmdb51 = "hmdb51"
    folder = "folder"
    list = "list"
    synthetic = "synthetic"


class Schedule(str, Enum):
    cosine = "cosine"
    step = "step"
    constant = "constant"


class Amp(str, Enum):
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


_T = "Training"
_D = "Data"
_L = "Distributed"


def _opt(*names: str, help: str, panel: str = _T, **kw):
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kw)


MAX_SKIPPED_HELP = (
    "Stop before the first step when more than this fraction of a split's listed videos are "
    "missing or cannot be decoded (each is checked first, in the --workers processes; the "
    f"run then says which and why). Default: {DEFAULT_MAX_SKIPPED:g}."
)
MaxSkippedOpt = Annotated[float | None, _opt("--max-skipped", help=MAX_SKIPPED_HELP, panel=_D)]


def train(
    config: Annotated[
        Path | None,
        _opt(
            "--config",
            help="TOML file of settings (keys as the "
            "long options, - or _); command-line options override it.",
        ),
    ] = None,
    dataset: Annotated[
        DatasetName | None, _opt("--dataset", help="Dataset [default: ucf101].", panel=_D)
    ] = None,
    data_root: Annotated[
        str | None,
        _opt(
            "--data-root",
            help="Folder holding the dataset (for "
            "list: a list file or a folder of train/val lists).",
            panel=_D,
        ),
    ] = None,
    split: Annotated[
        int | None,
        _opt(
            "--split",
            help="Official split 1, 2 or 3 [default: 1]; synthetic: the data seed.",
            panel=_D,
            min=1,
            max=3,
        ),
    ] = None,
    arch: Annotated[
        str | None,
        _opt(
            "--arch", help="Registered model name (ispan models list) [default: istpan_resnet50]."
        ),
    ] = None,
    pretrained: Annotated[
        str | None,
        _opt(
            "--pretrained",
            help="Backbone weights: imagenet, none or a state-dict PATH [default: imagenet].",
        ),
    ] = None,
    segments: Annotated[
        int | None, _opt("--segments", "-s", help="K segments per video [default: 8].", min=1)
    ] = None,
    input_size: Annotated[
        int | None, _opt("--input-size", help="Crop side [default: the architecture's].", min=16)
    ] = None,
    epochs: Annotated[int | None, _opt("--epochs", help="[default: 50]", min=1)] = None,
    batch_size: Annotated[
        int | None,
        _opt(
            "--batch-size", "-b", help="Global batch, split across processes [default: 32].", min=1
        ),
    ] = None,
    lr: Annotated[float | None, _opt("--lr", help="Learning rate [default: 0.001].")] = None,
    schedule: Annotated[Schedule | None, _opt("--schedule", help="[default: cosine]")] = None,
    warmup_epochs: Annotated[float | None, _opt("--warmup-epochs", help="[default: 0]")] = None,
    weight_decay: Annotated[float | None, _opt("--weight-decay", help="[default: 5e-4]")] = None,
    momentum: Annotated[float | None, _opt("--momentum", help="[default: 0.9]")] = None,
    dropout: Annotated[
        float | None, _opt("--dropout", help="Before the classifier [default: 0.8].")
    ] = None,
    beta: Annotated[
        float | None, _opt("--beta", help="Interaction loss weight [default: 0.1].")
    ] = None,
    gamma: Annotated[
        float | None, _opt("--gamma", help="Diversity loss weight [default: 0.1].")
    ] = None,
    interaction_loss: Annotated[
        bool | None,
        _opt(
            "--interaction-loss/--no-interaction-loss",
            help="Interaction loss on/off [default: on].",
        ),
    ] = None,
    diversity_loss: Annotated[
        bool | None,
        _opt("--diversity-loss/--no-diversity-loss", help="Diversity loss on/off [default: on]."),
    ] = None,
    output_norm: Annotated[
        bool | None,
        _opt(
            "--output-norm/--no-output-norm",
            help="[ours] Scale the attention output so its pooling weights sum to 1 however "
            "peaked the attention is; off is the paper's M = A X, with which attention learns "
            "to avoid small objects [default: on].",
        ),
    ] = None,
    attention_warmup: Annotated[
        float | None,
        _opt(
            "--attention-warmup",
            help="Fraction of the run during which the attention layer stays at its near-uniform "
            "start while the classifier learns; 0 trains it from the first step "
            f"[default: {ATTENTION_WARMUP}].",
        ),
    ] = None,
    attention_lr: Annotated[
        float | None,
        _opt(
            "--attention-lr",
            help=f"Learning-rate multiplier of the attention layer [default: {ATTENTION_LR:g}].",
        ),
    ] = None,
    partial_bn: Annotated[
        bool | None,
        _opt(
            "--partial-bn/--no-partial-bn",
            help="Freeze all BN but the first [default: on with pretrained weights].",
        ),
    ] = None,
    frozen_bn: Annotated[
        bool | None,
        _opt(
            "--frozen-bn/--no-frozen-bn",
            help="Every BN layer on running statistics (1 process then equals N exactly).",
        ),
    ] = None,
    precise_bn: Annotated[
        int | None,
        _opt(
            "--precise-bn",
            help="Batches to recompute BN statistics before each evaluation; 0 off [default: 20].",
            min=0,
        ),
    ] = None,
    flip: Annotated[
        bool | None, _opt("--flip/--no-flip", help="Random horizontal flips [default: on].")
    ] = None,
    amp: Annotated[Amp | None, _opt("--amp", help="Autocast precision [default: off].")] = None,
    workers: Annotated[
        int | None,
        _opt(
            "--workers",
            "-w",
            help="Data loading processes per training process [default: 4].",
            min=0,
        ),
    ] = None,
    seed: Annotated[int | None, _opt("--seed", help="[default: 0]")] = None,
    deterministic: Annotated[
        bool | None,
        _opt(
            "--deterministic/--no-deterministic",
            help="Deterministic algorithms (bitwise-reproducible on the CPU).",
        ),
    ] = None,
    device: Annotated[
        str | None, _opt("--device", "-d", help="auto, cpu, cuda or cuda:N [default: auto].")
    ] = None,
    output: Annotated[
        str | None,
        _opt(
            "--output",
            "-o",
            help="Run folder: checkpoints, logs, best/ model [default: runs/train].",
        ),
    ] = None,
    eval_every: Annotated[
        int | None, _opt("--eval-every", help="Epochs between validations [default: 1].", min=1)
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        _opt(
            "--checkpoint-every",
            help="Also checkpoint every N steps [default: 0, end of epochs only].",
            min=0,
        ),
    ] = None,
    synthetic_train: Annotated[
        int | None,
        _opt(
            "--synthetic-train", help="Synthetic training clips [default: 1000].", panel=_D, min=1
        ),
    ] = None,
    synthetic_val: Annotated[
        int | None,
        _opt("--synthetic-val", help="Synthetic validation clips [default: 200].", panel=_D, min=0),
    ] = None,
    max_skipped: MaxSkippedOpt = None,
    resume: Annotated[
        bool | None,
        _opt(
            "--resume/--no-resume",
            help="Resume the run in --output [default: automatically when there is one].",
        ),
    ] = None,
    force: Annotated[
        bool,
        _opt(
            "--force",
            help="Write into a non-empty --output that holds no run to resume (another run's "
            "model, your own files): files of the same names are replaced. Without it such a "
            "folder is refused.",
        ),
    ] = False,
    gpus: Annotated[
        int | None,
        _opt("--gpus", help="Start N GPU processes (NCCL) on this node.", panel=_L, min=1),
    ] = None,
    devices: Annotated[
        int | None,
        _opt("--devices", help="Start N processes on --device (gloo on the CPU).", panel=_L, min=1),
    ] = None,
    nnodes: Annotated[
        int, _opt("--nnodes", help="Nodes of a multi-node run.", panel=_L, min=1)
    ] = 1,
    node_rank: Annotated[
        int | None,
        _opt("--node-rank", help="This node's rank (static rendezvous).", panel=_L, min=0),
    ] = None,
    rdzv_endpoint: Annotated[
        str | None,
        _opt(
            "--rdzv-endpoint",
            help="HOST:PORT of the rendezvous (node 0) for multi-node runs.",
            panel=_L,
        ),
    ] = None,
    quiet: Annotated[bool, _opt("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Train a model on UCF101, HMDB51, a folder, a list or the synthetic dataset."""
    from ispan_cli.commands.train_progress import TrainProgress
    from ispan_cli.engine.config import build_config
    from ispan_cli.engine.launch import run_training

    if gpus and devices:
        raise UsageError("give either --gpus N (GPU processes) or --devices N, not both")
    overrides = {
        "dataset": dataset.value if dataset else None,
        "data_root": data_root,
        "split": split,
        "arch": arch,
        "pretrained": pretrained,
        "segments": segments,
        "input_size": input_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule.value if schedule else None,
        "warmup_epochs": warmup_epochs,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "dropout": dropout,
        "beta": beta,
        "gamma": gamma,
        "interaction_loss": interaction_loss,
        "diversity_loss": diversity_loss,
        "output_norm": output_norm,
        "attention_warmup": attention_warmup,
        "attention_lr": attention_lr,
        "partial_bn": partial_bn,
        "frozen_bn": frozen_bn,
        "precise_bn": precise_bn,
        "flip": flip,
        "amp": amp.value if amp else None,
        "workers": workers,
        "seed": seed,
        "deterministic": deterministic,
        "device": device,
        "output": output,
        "eval_every": eval_every,
        "checkpoint_every": checkpoint_every,
        "synthetic_train": synthetic_train,
        "synthetic_val": synthetic_val,
        "max_skipped": max_skipped,
        "command": "ispan " + shlex.join(sys.argv[1:]),
    }
    if gpus:
        overrides["device"] = "cuda"
    cfg = build_config(config, overrides)
    nprocs = gpus or devices or 1
    if gpus:
        _check_gpus(gpus)
    summary = run_training(
        cfg, TrainProgress(quiet), resume, nprocs, nnodes, node_rank, rdzv_endpoint, force
    )
    if summary["rank"] != 0:  # started by torchrun/SLURM: rank 0 speaks for the run
        return
    from ispan_cli.terminal import one_line

    best = summary["best_top1"]
    shown = f"best validation top-1 {100 * best:.2f}%" if best > -1 else "no validation set"
    skipped = summary.get("skipped")
    if skipped and cfg.dataset != "synthetic":
        from ispan_cli.data.skips import SUMMARY_FILE, SkipReport

        where = Path(summary["output"]) / SUMMARY_FILE
        described = one_line(SkipReport.from_dict(skipped).describe())
        typer.echo(f"{described} (each in {one_line(where)})", err=True)
    typer.echo(f"{shown}; model folder: {one_line(summary['best_model'])}", err=True)


def _check_gpus(n: int) -> None:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UsageError(f"--gpus {n}: no CUDA device here; on the CPU use --devices N (gloo)")
    if count < n:
        raise UsageError(f"--gpus {n}: this machine has {count} CUDA device(s); use --gpus {count}")
