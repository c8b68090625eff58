"""How many threads the model and the decoders get, from the cores this process may use.

The machine's core count is the wrong base in a container or under a batch scheduler: the
affinity mask (``taskset``, SLURM's ``--cpus-per-task``, Kubernetes' cpuset) and a cgroup CPU
quota (``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` in v1) both give a process fewer. Torch's
and ONNX Runtime's pools sized for more cores than there are, plus decode threads on top, spin
and preempt each other: measured end to end at 0.73x of the model alone (issue 18).

The plan: the model gets every usable core on the CPU (it is most of the work) and one decode
worker per 8 cores (at least one: decoding a clip is a few percent of a CPU model's time and
overlaps with it); on a GPU the model needs one CPU thread and the rest decode.

Two more things the plan decides, both measured on the 2-core machine (issue 18):
- Waiting: the model's idle threads busy-wait (OpenMP's and ONNX Runtime's default) unless
  other processes of the job share the node. On a machine of its own, spinning is faster end to
  end even with a decode worker beside the model: istpan_resnet50, batch 1, idle 2 cores, 1.25
  against 1.00 videos/s for torch (``OMP_WAIT_POLICY`` ACTIVE / PASSIVE), 6.0 against 3.8 for
  ONNX Runtime int8, 2.09 against 2.16 for fp32. Where processes compete for the cores, a spinning
  pool burns the CPU its neighbours need (under load torch spent 3.1 CPU-s a clip spinning, 1.5
  passive; ONNX Runtime 1.04 against 0.78), so ``spin`` is False there: ONNX Runtime's
  ``session.intra_op.allow_spinning`` = 0 and ``OMP_WAIT_POLICY=PASSIVE`` for torch (read once,
  when torch is first imported; a user's own value wins).
- Codec threads: each decode worker's FFmpeg decodes with the cores left over by the model,
  shared among the workers, and at least one. FFmpeg's own choice (a thread per core and one
  more) is 26 threads on a CPU job whose model already holds every core: 52 ms of decode CPU a
  video against 42 ms with one thread (istpan_resnet50 clips, 2 cores).
- Neighbours: processes launched side by side on one node (torchrun's ``LOCAL_WORLD_SIZE``,
  SLURM's tasks per node) share its cores; each gets its share unless the launcher already
  narrowed its affinity mask (SLURM's CPU binding).
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadPlan:
    cores: int  # usable by this process (affinity and cgroup quota)
    model_threads: int  # torch intra-op threads / ONNX Runtime intra_op_num_threads
    decode_workers: int  # background decoding threads of the classify pipeline
    source: str  # what limited ``cores``: "affinity", "cgroup", "cpu_count", "shared" or "given"
    spin: bool = True  # may the model's idle threads busy-wait (no other process of the job here)
    processes: int = 1  # processes of this job on this node, sharing its cores
    codec_threads: int = 0  # FFmpeg threads per decode worker (0: FFmpeg's own choice)

    def to_dict(self) -> dict:
        return asdict(self)


def usable_cores(cgroup_root: Path = CGROUP_ROOT, processes: int = 1) -> tuple[int, str]:
    """(cores this process may run on, what limits them).

    ``processes``: how many processes of the job share this node (:func:`local_processes`);
    unless the affinity mask is already narrower than the machine, each gets its share.
    """
    machine = os.cpu_count() or 1
    try:
        cores, source = len(os.sched_getaffinity(0)), "affinity"
    except (AttributeError, OSError):  # not Linux
        cores, source = machine, "cpu_count"
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None and math.ceil(quota) < cores:
        cores, source = max(1, math.ceil(quota)), "cgroup"
    if processes > 1 and cores >= machine:  # nobody narrowed it for us: share with neighbours
        cores, source = max(1, cores // processes), "shared"
    return max(cores, 1), source


def local_processes(environ: dict | None = None) -> int:
    """Processes of this job on this node, from the launcher: torchrun's ``LOCAL_WORLD_SIZE``,
    SLURM's ``SLURM_STEP_TASKS_PER_NODE`` / ``SLURM_NTASKS_PER_NODE`` (``"4(x2)"``: 4 on each
    of 2 nodes); 1 when launched alone or by hand (``--shard I/N`` says nothing about nodes)."""
    env = os.environ if environ is None else environ
    for name in ("LOCAL_WORLD_SIZE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"):
        match = re.match(r"\s*(\d+)", env.get(name, ""))
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return 1


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
    source, processes = "given", 1
    if cores is None:
        processes = local_processes()
        cores, source = usable_cores(processes=processes)
    if gpu:
        model, decode = 1, max(1, cores - 1)
    else:
        model, decode = cores, max(1, cores // 8)
    model = threads or model
    decode = decode if workers is None else workers
    free = cores - (1 if gpu else model)  # cores neither the model nor its feeding thread needs
    return ThreadPlan(
        cores=cores,
        model_threads=model,
        decode_workers=decode,
        source=source,
        spin=processes == 1,
        processes=processes,
        codec_threads=max(1, free // max(1, decode)),
    )


def prepare_threads(plan: ThreadPlan) -> bool:
    """Before torch is imported: OpenMP's wait policy for a plan whose model must not spin
    (a user's own ``OMP_WAIT_POLICY`` wins). Returns whether torch will see the plan's policy
    (False once torch was imported: OpenMP read its environment then)."""
    if "torch" in sys.modules:
        return False
    if not plan.spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


def apply_torch_threads(plan: ThreadPlan) -> None:
    """Sizes torch's intra-op pool (ONNX Runtime takes ``model_threads`` per session)."""
    prepare_threads(plan)
    import torch

    if torch.get_num_threads() != plan.model_threads:
        torch.set_num_threads(plan.model_threads)
