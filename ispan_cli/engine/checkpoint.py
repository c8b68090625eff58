"""Resumable training state: what a run's checkpoint holds, the checks before one is resumed, and
the file itself, written atomically and loaded with ``torch.load(weights_only=True)`` (tensors and
plain containers only; nothing is unpickled that could run code)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ispan_cli.engine.config import TrainConfig, config_changes, explicit
from ispan_cli.engine.init_from import InitReport
from ispan_cli.engine.recipes import RECIPE_FIELDS
from ispan_cli.engine.stopping import Monitor
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.model_folder import atomic_open

if TYPE_CHECKING:
    from ispan_cli.data.skips import RunSkips
    from ispan_cli.engine.trackers import Trackers

CHECKPOINTS = "checkpoints"  # the run folder's sub-folder holding them
LAST = "last.pt"
BEST = "best.pt"
FORMAT = "ispan-train-state"


def state_path(out: str | Path, best: bool = False) -> Path:
    """The run folder ``out``'s checkpoint: the last one, or the best model's."""
    return Path(out) / CHECKPOINTS / (BEST if best else LAST)


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Writes ``state`` to a temporary file beside ``path``, fsyncs it, then renames it: a kill
    at any moment leaves either the old checkpoint or the new one, never half a file."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """The state saved by :func:`save_state`, on the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise ISpanError(
            f"{path} is not a readable ispan checkpoint ({str(exc).splitlines()[0]}); delete it "
            "to start over"
        ) from exc


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop uses (dropout and friends), as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Resumable(Protocol):
    """The parts of a training run (engine/trainer.py) that its checkpoint saves and restores."""

    cfg: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int
    step_in_epoch: int
    global_step: int
    best: float  # validation top-1 of the best model
    monitor: Monitor
    init: InitReport | None
    trackers: Trackers
    history: list[dict[str, Any]]
    partial: dict[str, float]  # the running epoch's sums so far
    skips: RunSkips
    out: Path  # the run folder


def resume_state(
    out: str | Path, cfg: TrainConfig, resume: bool | None
) -> tuple[dict[str, Any] | None, TrainConfig]:
    """The state to resume from (None: start afresh) and ``cfg`` with the run's own settings
    where the user gave none. resume: None resumes when ``out`` holds a run; True requires one;
    False refuses one."""
    path = state_path(out)
    exists = path.is_file()
    if resume is True and not exists:
        raise UsageError(f"--resume: {out} holds no run ({path} is missing)")
    if exists and resume is False:
        raise UsageError(
            f"{out} already holds a run; resume it (drop --no-resume) or choose another --output"
        )
    if not exists:
        return None, cfg
    state = load_state(path)
    # runs saved before output_norm existed were trained without it
    saved = TrainConfig.from_dict({"output_norm": False, **state["config"]})
    # settings the user did not give (a recipe's, the range test's) are the run's own
    inherited = {
        k: getattr(saved, k) for k in (*RECIPE_FIELDS, "recipe") if not explicit(cfg.origins.get(k))
    }
    if inherited:
        origins = {k: v for k, v in cfg.origins.items() if k not in inherited}
        origins.update({k: v for k, v in saved.origins.items() if k in inherited})
        cfg = cfg.replace(**inherited, origins=origins)
    changes = config_changes(saved, cfg)
    if changes:
        raise UsageError(
            f"{out} holds a run with other settings ({'; '.join(changes)}); use the same "
            "settings to resume it, or another --output"
        )
    return state, cfg


def run_state(run: Resumable) -> dict[str, Any]:
    """Everything ``run`` needs to continue from this step, as :func:`restore` reads it."""
    return {
        "format": FORMAT,
        "config": run.cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng_state(),
        "epoch": run.epoch,
        "step_in_epoch": run.step_in_epoch,
        "global_step": run.global_step,
        "best": run.best,
        "monitor": run.monitor.to_dict(),
        "init": run.init.to_dict() if run.init is not None else {},
        "trackers": run.trackers.run_ids(),
        "history": run.history,
        "partial": run.partial,
        "skipped_later": run.skips.later,
    }


def restore(run: Resumable, state: dict[str, Any]) -> None:
    """Puts ``run`` (built for the same settings) where :func:`run_state` saved it."""
    run.model.load_state_dict(state["model"])
    try:
        run.optimizer.load_state_dict(state["optimizer"])
    except ValueError as exc:  # parameter groups differ: written by another ispan version
        raise ISpanError(
            f"{state_path(run.out)} holds an optimizer state of another layout ({exc}); it "
            "was written by another ispan version: start again with another --output"
        ) from exc
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    run.epoch, run.step_in_epoch = state["epoch"], state["step_in_epoch"]
    run.global_step, run.best = state["global_step"], state["best"]
    if state.get("init"):
        run.init = InitReport.from_dict(state["init"])
    if "monitor" in state:
        run.monitor = Monitor.from_dict(state["monitor"])
    else:  # written before --monitor: the best was chosen by top-1
        run.monitor.best = run.best
    run.history, run.partial = state["history"], state["partial"]
    for path, message in state.get("skipped_later", {}).items():
        run.skips.fail(path, message, quiet=True)
    # the optimizer's state holds the lr of the step where it was saved; the scheduler (built
    # for this run's length, which may be longer on resume) sets it from its position
    last_lr = run.scheduler.get_last_lr()
    for group, lr in zip(run.optimizer.param_groups, last_lr, strict=True):
        group["lr"] = lr


def tracker_ids(state: dict[str, Any] | None) -> dict[str, str]:
    """The trackers' run ids saved with ``state``, so a resumed run logs to the same runs."""
    return state.get("trackers", {}) if state is not None else {}
