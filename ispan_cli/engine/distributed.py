"""Process groups: join one started by torchrun or SLURM, or start workers through PyTorch's
elastic launcher (the engine behind torchrun). NCCL on GPUs, gloo on the CPU."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ispan_cli.errors import UsageError


@dataclass(frozen=True)
class World:
    """This process's place: rank among ``size`` processes and the device it drives."""

    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's or SLURM's variables, else None."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return None


def setup_world(device: str) -> World:
    """Initialises the process group when this process belongs to one, and picks its device:
    ``cuda:<local rank>`` for GPU runs, the CPU (gloo) otherwise."""
    from ispan_cli.runtime.device import resolve_device

    placed = env_world()
    if placed is None:
        return World(0, 1, 0, resolve_device(device))
    rank, size, local = placed
    wanted = resolve_device(device)
    if wanted.type == "cuda":
        wanted = torch.device(f"cuda:{local}")
        torch.cuda.set_device(wanted)
    if size > 1 and not dist.is_initialized():
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(size))
        os.environ.setdefault("LOCAL_RANK", str(local))
        if "MASTER_ADDR" not in os.environ:
            raise UsageError(
                "this process is one of several (SLURM) but MASTER_ADDR/MASTER_PORT are not set; "
                "export them in the job script or start ispan with torchrun"
            )
        backend = "nccl" if wanted.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=size)
    return World(rank, size, local, wanted)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(
    entry: Callable[..., Any],
    args: tuple,
    nprocs: int,
    nnodes: int = 1,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
) -> dict[int, Any]:
    """Runs ``entry(*args)`` in ``nprocs`` processes per node with torch's elastic launcher.

    Single node: a c10d rendezvous on a free loopback port. Several nodes: ``rdzv_endpoint``
    (host:port of node 0) is required; with ``node_rank`` the static rendezvous is used, as
    ``torchrun --node-rank`` does. Returns each local rank's return value.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nnodes > 1 and not rdzv_endpoint:
        raise UsageError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the first node's address)")
    endpoint = rdzv_endpoint or f"127.0.0.1:{_free_port()}"
    backend, rdzv_configs = "c10d", {}
    if node_rank is not None:
        backend, rdzv_configs = "static", {"rank": node_rank}
    config = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=nprocs,
        run_id=os.environ.get("ISPAN_RUN_ID", uuid.uuid4().hex[:12]),
        rdzv_backend=backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=rdzv_configs,
        max_restarts=0,
        start_method="spawn",
        monitor_interval=0.5,
    )
    # The launcher logs each failed worker's exit as a traceback of its own; the worker has
    # already printed its error (or handed a user error to the caller), so that adds nothing.
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
    try:
        return elastic_launch(config, entry)(*args)
    except ChildFailedError as exc:
        rank, first = next(iter(exc.failures.items()))  # keyed by global rank
        raise UsageError(
            f"a training process failed (rank {rank}, exit code {first.exitcode}); see "
            "its error above",
            exit_code=1,
        ) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's ``obj`` (rank order); just ``[obj]`` in a single process."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    if not world.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if world.device.type == "cuda":
        t = t.to(world.device)
    dist.all_reduce(t)
    return t.cpu().tolist()
