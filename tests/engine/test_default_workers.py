"""`ispan train` without --workers: 4 data-loading processes, at most one per usable core.

A fixed 4 on a 2-core machine printed PyTorch's "excessive worker creation" UserWarning (with
its source path) for every DataLoader of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs an affinity mask of 2+ cores to narrow",
)


def test_the_default_follows_the_cores_this_process_may_use(tmp_path):
    # one core of the machine's: the default is 1, and no DataLoader warns about it
    core = min(os.sched_getaffinity(0))
    script = (
        f"import os, sys; os.sched_setaffinity(0, {{{core}}}); "
        "from ispan_cli.app import main; sys.argv[0] = 'ispan'; main()"
    )
    run = tmp_path / "run"
    args = [
        "train", "--dataset", "synthetic", "--synthetic-train", "8", "--synthetic-val", "4",
        "--epochs", "1", "--arch", "istpan_tiny", "--pretrained", "none", "-b", "4",
        "--input-size", "64", "--output", str(run), "--quiet",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "worker" not in result.stderr.lower(), result.stderr
    assert json.loads((run / "best" / "config.json").read_text())["training"]["workers"] == 1


def test_the_default_is_four_at_most():
    from ispan_cli.engine.config import TrainConfig

    assert TrainConfig().workers == min(4, len(os.sched_getaffinity(0)))
