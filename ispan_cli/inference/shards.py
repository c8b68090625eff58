"""Which share of the inputs this process classifies, from ``--shard`` or the launcher.

Processes share nothing but the file system: each takes every N-th input (input i goes to shard
``i % N``, a deterministic split of a stream whose length is unknown), writes its own part file,
and the parts are interleaved back into input order (``merge.py``). The launchers' environment
only names the rank; no process group is created, so a slow or dead process blocks no other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ispan_cli.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), and where that came from."""

    index: int
    count: int
    source: str = "--shard"  # --shard | torchrun | slurm
    local_rank: int | None = None  # the process's index on its machine (its GPU), if known

    def take(self, items: Iterable[T]) -> Iterator[T]:
        """Every ``count``-th item, starting at ``index``."""
        for i, item in enumerate(items):
            if i % self.count == self.index:
                yield item

    def __str__(self) -> str:
        return f"shard {self.index}/{self.count} ({self.source})"


def parse_shard(value: str) -> Shard:
    """``I/N`` with 0 <= I < N (SLURM array jobs: ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``,
    with ``--array=0-(N-1)``)."""
    index, sep, count = value.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise UsageError(f"--shard {value!r} is not I/N (for example --shard 3/32)")
    i, n = int(index), int(count)
    if n < 1 or i >= n:
        raise UsageError(
            f"--shard {value}: the index must be 0..{max(n - 1, 0)} (counted from 0; an array "
            "job with --array=1-N passes $((SLURM_ARRAY_TASK_ID - 1))/N)"
        )
    if n > 99999:
        raise UsageError(f"--shard {value}: at most 99999 shards")
    return Shard(i, n)


def detect_shard(option: str | None, env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of this process: ``--shard`` if given, else torchrun's ``RANK``/``WORLD_SIZE``,
    else an ``srun`` step's ``SLURM_PROCID``/``SLURM_NTASKS``; None for a single process.

    SLURM counts only inside an srun step (its ``SLURM_STEP_NUM_TASKS``; else ``SLURM_NTASKS``
    with a ``SLURM_STEP_ID`` that is not the batch script's): a batch script that runs ispan
    once, without srun, is one process even when the job has several tasks.
    """
    env = os.environ if env is None else env
    if option is not None:
        shard = parse_shard(option)
        local = _int(env, "LOCAL_RANK", "SLURM_LOCALID")
        return Shard(shard.index, shard.count, "--shard", local)
    world = _int(env, "WORLD_SIZE")
    if world is not None and world > 1:
        return _checked(_int(env, "RANK"), world, "torchrun", "RANK", _int(env, "LOCAL_RANK"))
    tasks = _slurm_step_tasks(env)
    if tasks is not None and tasks > 1:
        rank = _int(env, "SLURM_PROCID")
        return _checked(rank, tasks, "slurm", "SLURM_PROCID", _int(env, "SLURM_LOCALID"))
    return None


_BATCH_STEP = 4294967294  # SLURM_BATCH_SCRIPT: the step id of the batch script itself


def _slurm_step_tasks(env: Mapping[str, str]) -> int | None:
    step_tasks = _int(env, "SLURM_STEP_NUM_TASKS")
    if step_tasks is not None:
        return step_tasks
    step = _int(env, "SLURM_STEP_ID", "SLURM_STEPID")
    if step is None or step == _BATCH_STEP:
        return None
    return _int(env, "SLURM_NTASKS")


def _checked(rank: int | None, world: int, source: str, name: str, local: int | None) -> Shard:
    if rank is None or not 0 <= rank < world:
        raise UsageError(
            f"{source} environment: {name}={rank} is not in 0..{world - 1}; launch ispan through "
            "the launcher, or pass --shard I/N"
        )
    return Shard(rank, world, source, local)


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise UsageError(f"environment variable {name}={value!r} is not a whole number")
            return int(value)
    return None


def local_device(device: str, runtime: str, shard: Shard) -> str:
    """``--device auto`` for one of several processes on a machine: its own GPU,
    ``cuda:LOCAL_RANK`` (modulo the GPUs visible), when PyTorch sees any; else unchanged.

    ONNX Runtime keeps ``auto`` (its first GPU): telling whether it has a GPU would take a
    session; give it ``--device cuda:N``, or ``CUDA_VISIBLE_DEVICES`` per process.
    """
    if device != "auto" or shard.local_rank is None or runtime != "torch":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{shard.local_rank % count}" if count else device
