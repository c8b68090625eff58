"""How many threads the model and the decoders get, from the cores this process may use.

The machine's core count is the wrong base in a container or under a batch scheduler: the
affinity mask (``taskset``, SLURM's ``--cpus-per-task``, Kubernetes' cpuset) and a cgroup CPU
quota (``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` in v1) both give a process fewer. Torch's
and ONNX Runtime's pools sized for more cores than there are, plus decode threads on top, spin
and preempt each other: measured end to end at 0.73x of the model alone (issue 18).

The plan: the model gets every usable core on the CPU (it is most of the work) and one decode
worker per 8 cores (at least one: decoding a clip is a few percent of a CPU model's time and
overlaps with it); on a GPU the model needs one CPU thread and the rest decode.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadPlan:
    cores: int  # usable by this process (affinity and cgroup quota)
    model_threads: int  # torch intra-op threads / ONNX Runtime intra_op_num_threads
    decode_workers: int  # background decoding threads of the classify pipeline
    source: str  # what limited ``cores``: "affinity", "cgroup" or "cpu_count"

    def to_dict(self) -> dict:
        return asdict(self)


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> tuple[int, str]:
    """(cores this process may run on, what limits them)."""
    try:
        cores, source = len(os.sched_getaffinity(0)), "affinity"
    except (AttributeError, OSError):  # not Linux
        cores, source = os.cpu_count() or 1, "cpu_count"
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None and math.ceil(quota) < cores:
        cores, source = max(1, math.ceil(quota)), "cgroup"
    return max(cores, 1), source


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (e.g. 2.5), or None without a quota."""
    for folder in _own_cgroups(root):
        v2 = folder / "cpu.max"
        try:
            quota, period = v2.read_text().split()[:2]
            if quota != "max":
                return int(quota) / int(period)
            continue
        except (OSError, ValueError):
            pass
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            if quota > 0 and period > 0:
                return quota / period
        except (OSError, ValueError):
            pass
    return None


def _own_cgroups(root: Path) -> list[Path]:
    """This process's cgroup folders (v2 unified, v1 cpu controller), then the roots."""
    found: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers == "":
            found.append(root / rel)
        elif "cpu" in controllers.split(","):
            found.extend([root / "cpu" / rel, root / "cpu,cpuacct" / rel])
    found.extend([root, root / "cpu", root / "cpu,cpuacct"])
    return found


def plan_threads(
    gpu: bool = False,
    *,
    workers: int | None = None,
    threads: int | None = None,
    cores: int | None = None,
) -> ThreadPlan:
    """The plan for a classify job; ``workers``/``threads`` given by the user win."""
    source = "given"
    if cores is None:
        cores, source = usable_cores()
    if gpu:
        model, decode = 1, max(1, cores - 1)
    else:
        model, decode = cores, max(1, cores // 8)
    return ThreadPlan(
        cores=cores,
        model_threads=threads or model,
        decode_workers=decode if workers is None else workers,
        source=source,
    )


def apply_torch_threads(plan: ThreadPlan) -> None:
    """Sizes torch's intra-op pool (ONNX Runtime takes ``model_threads`` per session)."""
    import torch

    if torch.get_num_threads() != plan.model_threads:
        torch.set_num_threads(plan.model_threads)
