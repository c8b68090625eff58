"""``ispan train``: parse options, build a TrainConfig, run the training engine, render."""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.engine.config import (
    AMP,
    DEFAULT_WORKERS,
    MODALITIES,
    MONITORS,
    RANGES,
    SCHEDULES,
    TrainConfig,
)
from ispan_cli.engine.recipes import RECIPES
from ispan_cli.outputs import command_line

D = TrainConfig()  # the defaults --help shows: one definition, in engine/config.py


class DatasetName(str, Enum):
    ucf101 = "ucf101"
    hmdb51 = "hmdb51"
    folder = "folder"
    list = "list"
    synthetic = "synthetic"


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of the library's own tuple, so that --help lists exactly what it accepts."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


Schedule = _choices("Schedule", SCHEDULES)
Modality = _choices("Modality", MODALITIES)
Amp = _choices("Amp", AMP)
Monitor = _choices("Monitor", MONITORS)


_T = "Training"
_D = "Data"
_L = "Distributed"
_S = "Stopping"
_K = "Tracking"


def _by_recipe(key: str) -> str:
    """The recipes' values of a setting, for --help (engine/recipes.py decides at run time)."""
    shown = ", ".join(f"{r.values[key]:g} {name}" for name, r in RECIPES.items())
    return f"by recipe: {shown}"


def _lr_value(text: str) -> float | str:
    """--lr: a number, or ``auto`` (the range test)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a number nor auto") from None


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _opt(*names: str, help: str, panel: str = _T, **kw):
    # "\[": rich would take "[default: 50]" or "[ours]" for markup and print nothing of it
    help = help.replace("[", "\\[")
    # a TrainConfig setting's range is engine/config.RANGES, which a --config file gets too
    lo, hi = RANGES.get(names[0].lstrip("-").replace("-", "_"), (None, None))
    if lo is not None:
        kw.setdefault("min", lo)
    if hi is not None:
        kw.setdefault("max", hi)
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kw)


MAX_SKIPPED_HELP = (
    "Stop before the first step when more than this fraction of a split's listed videos are "
    "missing or cannot be decoded (each is checked first, in the --workers processes; the "
    f"run then says which and why). Default: {D.max_skipped:g}."
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
        DatasetName | None, _opt("--dataset", help=f"Dataset [default: {D.dataset}].", panel=_D)
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
    modality: Annotated[
        Modality | None,
        _opt(
            "--modality",
            help="rgb (frames) or flow: the flow stream of --arch (2L input channels, "
            "ImageNet weights by cross-modality pre-training, dropout 0.7 when fine-tuning), "
            "trained on the flow under --flow-root; its model folder records how that flow was "
            f"made [default: {D.modality}].",
            panel=_D,
        ),
    ] = None,
    flow_root: Annotated[
        str | None,
        _opt(
            "--flow-root",
            help="--modality flow: the folder `ispan flow extract` wrote for the dataset's "
            "videos (either layout; a video's flow is found under its path relative to "
            "--data-root, <class>/<video> or <video>).",
            panel=_D,
        ),
    ] = None,
    flow_length: Annotated[
        int | None,
        _opt(
            "--flow-length",
            help=f"--modality flow: L, flows stacked per segment [default: {D.flow_length}].",
            panel=_D,
        ),
    ] = None,
    split: Annotated[
        int | None,
        _opt(
            "--split",
            help=f"Official split 1, 2 or 3 [default: {D.split}]; synthetic: the data seed.",
            panel=_D,
        ),
    ] = None,
    arch: Annotated[
        str | None,
        _opt("--arch", help=f"Registered model name (ispan models list) [default: {D.arch}]."),
    ] = None,
    pretrained: Annotated[
        str | None,
        _opt(
            "--pretrained",
            help="Backbone weights: imagenet, none, a state-dict PATH or a timm ResNet on the "
            "Hub (hub:timm/resnet50.a1_in1k, safetensors) "
            f"[default: {D.pretrained}].",
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        _opt(
            "--init-from",
            help="Start from this model's weights (anything --model takes: a folder, a zoo "
            "name, a Hub repo, an imported checkpoint), taken by name and shape; the "
            "classifier is kept when the labels match, remapped by label name when some are "
            "shared, else initialised afresh. train.log and the card say which is which; "
            "--pretrained is then unused.",
        ),
    ] = None,
    freeze_backbone: Annotated[
        str | None,
        _opt(
            "--freeze-backbone",
            help="Hold the backbone still (weights and BN statistics): all, or the stages up to "
            "the one named (stem, layer1 ... layer4 for ResNets). `--freeze-backbone all` with "
            "--init-from is a linear probe.",
        ),
    ] = None,
    segments: Annotated[
        int | None,
        _opt("--segments", "-s", help=f"K segments per video [default: {D.segments}]."),
    ] = None,
    input_size: Annotated[
        int | None, _opt("--input-size", help="Crop side [default: the architecture's].")
    ] = None,
    epochs: Annotated[
        int | None, _opt("--epochs", help=f"Passes over the training videos [default: {D.epochs}].")
    ] = None,
    batch_size: Annotated[
        int | None,
        _opt(
            "--batch-size",
            "-b",
            help=f"Global batch, split across processes [default: {D.batch_size}].",
        ),
    ] = None,
    lr: Annotated[
        float | None,  # or "auto" (see _lr_value)
        _opt(
            "--lr",
            parser=_lr_value,
            help="Learning rate, or auto: a learning-rate range test before training chooses it "
            f"(lr_find.png; deterministic with --seed) [default: {_by_recipe('lr')}].",
            metavar="LR|auto",
        ),
    ] = None,
    schedule: Annotated[
        Schedule | None,
        _opt(
            "--schedule",
            help="Learning rate after the warm-up: cosine to 0 at the end, step (x0.1 at the "
            "fractions lr_steps of the run, "
            f"{', '.join(f'{f:g}' for f in D.lr_steps)}; set in --config), or constant "
            f"[default: {D.schedule}].",
        ),
    ] = None,
    warmup_epochs: Annotated[
        float | None,
        _opt("--warmup-epochs", help=f"Linear warm-up [default: {_by_recipe('warmup_epochs')}]."),
    ] = None,
    weight_decay: Annotated[
        float | None,
        _opt(
            "--weight-decay",
            help=f"SGD weight decay, not on biases or BN [default: {D.weight_decay:g}].",
        ),
    ] = None,
    momentum: Annotated[
        float | None, _opt("--momentum", help=f"SGD momentum [default: {D.momentum:g}].")
    ] = None,
    dropout: Annotated[
        float | None,
        _opt("--dropout", help=f"Before the classifier [default: {_by_recipe('dropout')}]."),
    ] = None,
    beta: Annotated[
        float | None, _opt("--beta", help=f"Interaction loss weight [default: {D.beta:g}].")
    ] = None,
    gamma: Annotated[
        float | None, _opt("--gamma", help=f"Diversity loss weight [default: {D.gamma:g}].")
    ] = None,
    interaction_loss: Annotated[
        bool | None,
        _opt(
            "--interaction-loss/--no-interaction-loss",
            help=f"Interaction loss on/off [default: {_on(D.interaction_loss)}].",
        ),
    ] = None,
    diversity_loss: Annotated[
        bool | None,
        _opt(
            "--diversity-loss/--no-diversity-loss",
            help=f"Diversity loss on/off [default: {_on(D.diversity_loss)}].",
        ),
    ] = None,
    output_norm: Annotated[
        bool | None,
        _opt(
            "--output-norm/--no-output-norm",
            help="[ours] Scale the attention output so its pooling weights sum to 1 however "
            "peaked the attention is; off is the paper's M = A X, with which attention learns "
            f"to avoid small objects [default: {_on(D.output_norm)}].",
        ),
    ] = None,
    attention_warmup: Annotated[
        float | None,
        _opt(
            "--attention-warmup",
            help="Fraction of the run during which the attention layer stays at its near-uniform "
            "start while the classifier learns; 0 trains it from the first step "
            f"[default: {D.attention_warmup:g}].",
        ),
    ] = None,
    attention_lr: Annotated[
        float | None,
        _opt(
            "--attention-lr",
            help=f"Learning-rate multiplier of the attention layer [default: {D.attention_lr:g}].",
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
            help="Batches to recompute BN statistics before each evaluation; 0 off "
            f"[default: {D.precise_bn}].",
        ),
    ] = None,
    flip: Annotated[
        bool | None,
        _opt("--flip/--no-flip", help=f"Random horizontal flips [default: {_on(D.flip)}]."),
    ] = None,
    amp: Annotated[
        Amp | None, _opt("--amp", help=f"Autocast precision [default: {D.amp}].")
    ] = None,
    workers: Annotated[
        int | None,
        _opt(
            "--workers",
            "-w",
            help="Data loading processes per training process [default: "
            f"{DEFAULT_WORKERS}, at most the usable cores].",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        _opt(
            "--seed", help=f"Seeds the weights, clip sampling and augmentation [default: {D.seed}]."
        ),
    ] = None,
    deterministic: Annotated[
        bool | None,
        _opt(
            "--deterministic/--no-deterministic",
            help="Deterministic algorithms (bitwise-reproducible on the CPU).",
        ),
    ] = None,
    device: Annotated[
        str | None, _opt("--device", "-d", help=f"auto, cpu, cuda or cuda:N [default: {D.device}].")
    ] = None,
    output: Annotated[
        str | None,
        _opt(
            "--output",
            "-o",
            help=f"Run folder: checkpoints, logs, best/ model [default: {D.output}].",
        ),
    ] = None,
    eval_every: Annotated[
        int | None,
        _opt("--eval-every", help=f"Epochs between validations [default: {D.eval_every}]."),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        _opt(
            "--checkpoint-every",
            help="Also checkpoint every N steps "
            f"[default: {D.checkpoint_every}, end of epochs only].",
        ),
    ] = None,
    synthetic_train: Annotated[
        int | None,
        _opt(
            "--synthetic-train",
            help=f"Synthetic training clips [default: {D.synthetic_train}].",
            panel=_D,
        ),
    ] = None,
    synthetic_val: Annotated[
        int | None,
        _opt(
            "--synthetic-val",
            help=f"Synthetic validation clips [default: {D.synthetic_val}].",
            panel=_D,
        ),
    ] = None,
    max_skipped: MaxSkippedOpt = None,
    log: Annotated[
        str | None,
        _opt(
            "--log",
            help="Experiment trackers, comma-separated: tensorboard (RUN/tb), mlflow, wandb; each "
            "an extra (pip install 'ispan[tensorboard]'). Rank 0 logs; a tracker that fails "
            "warns once and training goes on; a resume continues the same tracker run.",
            panel=_K,
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        _opt(
            "--mlflow-uri",
            help="MLflow tracking server [default: $MLFLOW_TRACKING_URI, else RUN/mlruns].",
            panel=_K,
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        _opt("--experiment", help="MLflow experiment / W&B project [default: ispan].", panel=_K),
    ] = None,
    run_name: Annotated[
        str | None,
        _opt(
            "--run-name", help="Tracker run name [default: the --output folder's name].", panel=_K
        ),
    ] = None,
    patience: Annotated[
        int | None,
        _opt(
            "--patience",
            help="Stop after N evaluations without improvement of --monitor; the best "
            f"checkpoint and model folder are kept [default: {D.patience}, off].",
            panel=_S,
        ),
    ] = None,
    monitor: Annotated[
        Monitor | None,
        _opt(
            "--monitor",
            help="Validation figure that picks the best model and that --patience watches: "
            "top-1, mean class accuracy, or the cross-entropy of the video-level logits "
            f"[default: {D.monitor}].",
            panel=_S,
        ),
    ] = None,
    time_limit: Annotated[
        str | None,
        _opt(
            "--time-limit",
            help="Wall-clock budget of this run (2h30m, 90m, 45s, 3600): it stops at a step "
            "boundary before the budget ends, with a checkpoint the same command resumes. "
            "SIGTERM and SIGUSR1 (sent by SLURM before a job's time is up) do the same.",
            panel=_S,
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        _opt(
            "--max-steps",
            help="Optimizer steps in all (smoke runs): the run, and its schedule, end there; the "
            f"epoch it ends in is evaluated [default: {D.max_steps}, epochs x steps].",
            panel=_S,
        ),
    ] = None,
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
    # first: every parameter named as a TrainConfig field is a setting (None: not given)
    given = {k: v.value if isinstance(v, Enum) else v for k, v in locals().items() if k in _FIELDS}
    if given.get("pretrained"):  # hub:org/name -> its model.safetensors, fetched once, here
        from ispan_cli.importers import resolve_pretrained

        given["pretrained"] = resolve_pretrained(given["pretrained"])
    from ispan_cli.commands.train_progress import TrainProgress
    from ispan_cli.engine.launch import TrainOptions, run_training

    options = TrainOptions(
        settings={**given, "command": command_line()},
        config_file=config,
        resume=resume,
        force=force,
        gpus=gpus,
        devices=devices,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
    )
    result = run_training(options, TrainProgress(quiet))
    if result.rank == 0:  # started by torchrun/SLURM: rank 0 speaks for the run
        _render(result)


_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _render(result) -> None:
    from ispan_cli.terminal import one_line

    best = result.best_top1
    shown = f"best validation top-1 {100 * best:.2f}%" if best > -1 else "no validation set"
    if result.skipped and result.dataset != "synthetic":
        from ispan_cli.data.skips import SUMMARY_FILE, SkipReport

        where = Path(result.output) / SUMMARY_FILE
        described = one_line(SkipReport.from_dict(result.skipped).describe())
        typer.echo(f"{described} (each in {one_line(where)})", err=True)
    if result.stopped:
        typer.echo(f"stopped: {one_line(result.stopped)}", err=True)
    typer.echo(f"{shown}; model folder: {one_line(result.best_model)}", err=True)
