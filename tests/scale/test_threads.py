"""The thread plan counts the cores this process may use: its affinity mask and cgroup quota."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ispan_cli.runtime.threads import cgroup_cpu_limit, plan_threads, usable_cores


def test_the_affinity_mask_limits_the_cores():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to restrict to one")
    code = (
        "from ispan_cli.runtime.threads import usable_cores, plan_threads, apply_torch_threads\n"
        "import torch; p = plan_threads(); apply_torch_threads(p)\n"
        "print(usable_cores(), p.model_threads, p.decode_workers, torch.get_num_threads())"
    )
    one = {min(os.sched_getaffinity(0))}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.sched_setaffinity(0, one),
    )  # fmt: skip
    assert done.stdout.split() == ["(1,", "'affinity')", "1", "1", "1"], done.stderr


@pytest.mark.parametrize(
    ("files", "want"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quotas_are_read(tmp_path, files, want):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == want


def test_a_quota_below_the_mask_wins(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: one thread
    assert usable_cores(tmp_path) == (1, "cgroup")


def test_the_plan_gives_the_model_the_cores_and_the_user_the_last_word():
    assert plan_threads(cores=16).model_threads == 16
    assert plan_threads(cores=16).decode_workers == 2
    assert plan_threads(cores=2).decode_workers == 1
    assert plan_threads(True, cores=8).decode_workers == 7  # a GPU model needs one CPU thread
    assert plan_threads(cores=8, workers=0, threads=3).decode_workers == 0
    assert plan_threads(cores=8, workers=0, threads=3).model_threads == 3
