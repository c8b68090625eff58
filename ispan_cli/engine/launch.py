"""Choosing how a training run starts: in this process, joining a torchrun/SLURM group, or as N
workers per node through the elastic launcher."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.distributed import env_world, launch
from ispan_cli.engine.events import Reporter
from ispan_cli.errors import ISpanError, UsageError


def run_training(
    cfg: TrainConfig,
    reporter: Reporter | None = None,
    resume: bool | None = None,
    nprocs: int = 1,
    nnodes: int = 1,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
) -> dict[str, Any]:
    """Trains and returns rank 0's summary (output folder, best model, best top-1).

    Started by torchrun or SLURM (WORLD_SIZE/RANK or SLURM_* set), this process joins that
    group and ``nprocs`` must be left at 1; otherwise ``nprocs * nnodes > 1`` launches workers.
    ``reporter`` must be picklable when workers are launched: it runs in the rank-0 worker.
    """
    if env_world() is not None:
        if nprocs > 1 or nnodes > 1:
            raise UsageError(
                "this process was started by torchrun/SLURM (WORLD_SIZE or SLURM_PROCID is set); "
                "drop --gpus/--devices/--nnodes: the launcher decides the processes"
            )
        return _worker(cfg.to_dict(), resume, reporter)
    if nprocs * nnodes == 1:
        return _worker(cfg.to_dict(), resume, reporter)
    with tempfile.TemporaryDirectory(prefix="ispan-workers-") as errors:
        try:
            results = launch(
                _launched_worker,
                (cfg.to_dict(), resume, reporter, errors),
                nprocs,
                nnodes,
                node_rank,
                rdzv_endpoint,
            )
        except ISpanError:
            # A worker's user error (a bad option, the skip budget) is the one line to show,
            # not the launcher's "a training process failed".
            reported = sorted(Path(errors).glob("rank-*.txt"))
            if reported:
                raise ISpanError(reported[0].read_text()) from None
            raise
    return results.get(0) or next(iter(results.values()))


def _launched_worker(
    cfg: dict[str, Any], resume: bool | None, reporter: Reporter | None, errors: str
) -> dict[str, Any]:
    """A launched worker: a user error is handed to the parent as text and the process exits
    without a traceback (the launcher then stops the other workers)."""
    try:
        return _worker(cfg, resume, reporter)
    except ISpanError as exc:
        placed = env_world()
        (Path(errors) / f"rank-{placed[0] if placed else 0:05d}.txt").write_text(str(exc))
        raise SystemExit(1) from None


def _worker(cfg: dict[str, Any], resume: bool | None, reporter: Reporter | None) -> dict[str, Any]:
    from ispan_cli.engine.trainer import train

    result = train(TrainConfig.from_dict(cfg), reporter, resume)
    placed = env_world()
    return {
        "rank": placed[0] if placed else 0,
        "output": str(result.output),
        "best_model": str(result.best_model),
        "best_top1": result.best_top1,
        "epochs": len(result.history),
        "skipped_videos": result.skipped_videos,
        "skipped": result.skipped,
        "resumed": result.resumed,
        "last": result.history[-1] if result.history else {},
    }
