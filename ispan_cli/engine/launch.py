"""Choosing how a training run starts: in this process, joining a torchrun/SLURM group, or as N
workers per node through the elastic launcher."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.engine import checkpoint as ckpt_names
from ispan_cli.engine.checkpoint import CHECKPOINTS
from ispan_cli.engine.config import TrainConfig, build_config
from ispan_cli.engine.distributed import env_world, launch
from ispan_cli.engine.events import Reporter
from ispan_cli.engine.trackers import check_installed, parse_trackers
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.limits import MAX_PROCESSES
from ispan_cli.terminal import visible


@dataclass(frozen=True)
class TrainOptions:
    """What ``ispan train`` asks for: the settings given (TrainConfig field names; None: not
    given, so the ``config_file`` or the default applies) and how the processes start."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | Path | None = None
    resume: bool | None = None  # None: resume when the output holds a run
    force: bool = False  # write into a non-empty output that holds no run
    gpus: int | None = None  # start N GPU processes (NCCL) on this node
    devices: int | None = None  # start N processes on the configured device
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.gpus and self.devices:
            raise UsageError("give either --gpus N (GPU processes) or --devices N, not both")
        if (self.devices or 0) > MAX_PROCESSES:  # 10**18 tried to start that many (10 GB+)
            raise UsageError(f"--devices {self.devices}: at most {MAX_PROCESSES} processes")

    @property
    def nprocs(self) -> int:
        return self.gpus or self.devices or 1

    def config(self) -> TrainConfig:
        """Defaults < ``config_file`` < ``settings``."""
        settings = dict(self.settings)
        if self.gpus:
            settings["device"] = "cuda"
        return build_config(self.config_file, settings)


@dataclass(frozen=True)
class TrainSummary:
    """Rank 0's account of a finished (or stopped) run; other ranks return theirs too, with
    ``rank`` telling them apart."""

    rank: int
    output: str
    best_model: str
    best_top1: float
    epochs: int
    skipped_videos: int
    skipped: dict[str, Any]
    resumed: bool
    last: dict[str, Any]
    dataset: str = ""
    stopped: str = ""  # why the run ended before its last epoch ("" when it ran them all)
    resumable: bool = False  # stopped by a time limit or a signal: the same command continues

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_training(options: TrainOptions, reporter: Reporter | None = None) -> TrainSummary:
    """Trains and returns rank 0's summary (output folder, best model, best top-1).

    The run folder is locked for the whole run by the process that speaks for it (this one, or
    rank 0 under torchrun/SLURM), and checked first (:func:`prepare_run_folder`;
    ``options.force`` allows a non-empty folder that is not a resumable run).

    Started by torchrun or SLURM (WORLD_SIZE/RANK or SLURM_* set), this process joins that
    group and ``nprocs`` must be left at 1; otherwise ``nprocs * nnodes > 1`` launches workers.
    ``reporter`` must be picklable when workers are launched: it runs in the rank-0 worker.
    """
    cfg = options.config()
    check_installed(parse_trackers(cfg.log))  # before the run folder is made
    if options.gpus:
        _check_gpus(options.gpus)
    placed = env_world()
    with prepare_run_folder(cfg.output, options.force) if placed is None or placed[0] == 0 else (
        contextlib.nullcontext()
    ):  # fmt: skip
        return _run(cfg, reporter, options)


def _check_gpus(n: int) -> None:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UsageError(f"--gpus {n}: no CUDA device here; on the CPU use --devices N (gloo)")
    if count < n:
        raise UsageError(f"--gpus {n}: this machine has {count} CUDA device(s); use --gpus {count}")


# What a run writes before its first checkpoint: a folder holding only these is an interrupted
# start (e.g. stopped by the video check) that the same command may start again.
BEFORE_FIRST_CHECKPOINT = frozenset(
    {"train.log", "data_check.json", "video_checks.jsonl", CHECKPOINTS}
)


@contextlib.contextmanager
def prepare_run_folder(output: str | Path, force: bool = False) -> Iterator[None]:
    """Creates and locks the run folder; refuses one that holds anything but a resumable run
    or an interrupted start, unless ``force``: another run's model, or a user's own files."""
    from ispan_cli.outputs import exclusive, is_lock_file

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {visible(out)} is a file; give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "--output"):
        if not force and not (out / CHECKPOINTS / ckpt_names.LAST).is_file():
            other = sorted(
                p.name
                for p in out.iterdir()
                if p.name not in BEFORE_FIRST_CHECKPOINT and not is_lock_file(p)
            )
            if other:
                shown = ", ".join(visible(n) for n in other[:5])
                raise UsageError(
                    f"--output {visible(out)} is not empty ({shown}) and holds no run to resume "
                    f"({CHECKPOINTS}/{ckpt_names.LAST}); its files would be replaced: choose "
                    "a new folder, or pass --force to write into it anyway"
                )
        yield


def _run(cfg: TrainConfig, reporter: Reporter | None, options: TrainOptions) -> TrainSummary:
    resume, nprocs, nnodes = options.resume, options.nprocs, options.nnodes
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
                options.node_rank,
                options.rdzv_endpoint,
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
) -> TrainSummary:
    """A launched worker: a user error is handed to the parent as text and the process exits
    without a traceback (the launcher then stops the other workers)."""
    try:
        return _worker(cfg, resume, reporter)
    except ISpanError as exc:
        placed = env_world()
        (Path(errors) / f"rank-{placed[0] if placed else 0:05d}.txt").write_text(str(exc))
        raise SystemExit(1) from None


def _worker(cfg: dict[str, Any], resume: bool | None, reporter: Reporter | None) -> TrainSummary:
    from ispan_cli.engine.trainer import train

    result = train(TrainConfig.from_dict(cfg), reporter, resume)
    placed = env_world()
    return TrainSummary(
        rank=placed[0] if placed else 0,
        output=str(result.output),
        best_model=str(result.best_model),
        best_top1=result.best_top1,
        epochs=len(result.history),
        skipped_videos=result.skipped_videos,
        skipped=result.skipped,
        resumed=result.resumed,
        last=result.history[-1] if result.history else {},
        dataset=cfg["dataset"],
        stopped=result.stopped,
        resumable=result.resumable,
    )
