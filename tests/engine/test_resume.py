"""A run killed with SIGKILL resumes from its last checkpoint and, with --deterministic on the
CPU, ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from ispan_cli.engine import checkpoint
from tests.engine.runs import FAST, ispan, metrics_rows, popen, weights

RUN = [*FAST, "--epochs", "3", "--synthetic-train", "48", "--synthetic-val", "10",
       "--deterministic", "--checkpoint-every", "2", "--dropout", "0.3", "--seed", "3"]  # fmt: skip


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    ispan("train", *RUN, "--output", str(straight))

    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.pt"
    proc = popen("train", *RUN, "--output", str(killed))
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = checkpoint.load_state(last)  # weights_only=True inside
    assert (state["epoch"], state["step_in_epoch"]) < (3, 0)
    assert not (killed / "best" / "README.md").exists() or state["epoch"] >= 1

    done = ispan("train", *RUN, "--output", str(killed))
    assert done.returncode == 0
    log = (killed / "train.log").read_text()
    assert "resumed from" in log
    a, b = weights(straight / "best"), weights(killed / "best")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    final_a = checkpoint.load_state(straight / "checkpoints" / "last.pt")["model"]
    final_b = checkpoint.load_state(killed / "checkpoints" / "last.pt")["model"]
    for key in final_a:
        assert torch.equal(final_a[key], final_b[key]), key
    assert metrics_rows(straight) == [
        {**row, "epoch_s": r["epoch_s"], "clips_per_s": r["clips_per_s"],
         "data_wait_share": r["data_wait_share"]}
        for row, r in zip(metrics_rows(killed), metrics_rows(straight), strict=True)
    ]  # fmt: skip


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_resume_refuses_other_settings_and_no_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    ispan("train", *FAST, "--epochs", "1", "--synthetic-train", "16", "--synthetic-val", "4",
          "--output", str(run))  # fmt: skip
    done = ispan("train", *FAST, "--epochs", "1", "--synthetic-train", "16", "--synthetic-val",
                 "4", "--lr", "0.5", "--output", str(run), check=False)  # fmt: skip
    assert done.returncode == 2 and "lr: 0.01 -> 0.5" in done.stderr
    done = ispan("train", *FAST, "--epochs", "1", "--synthetic-train", "16", "--synthetic-val",
                 "4", "--no-resume", "--output", str(run), check=False)  # fmt: skip
    assert done.returncode == 2 and "already holds a run" in done.stderr
    # more epochs continue the same run
    ispan("train", *FAST, "--epochs", "2", "--synthetic-train", "16", "--synthetic-val", "4",
          "--output", str(run))  # fmt: skip
    assert [r["epoch"] for r in metrics_rows(run)] == [1, 2]
    # a checkpoint written before output_norm existed was trained without it: resuming it with
    # the new default is a settings change, and --no-output-norm resumes it
    last = run / "checkpoints" / "last.pt"
    state = checkpoint.load_state(last)
    del state["config"]["output_norm"]
    checkpoint.save_state(state, last)
    done = ispan("train", *FAST, "--epochs", "3", "--synthetic-train", "16", "--synthetic-val",
                 "4", "--output", str(run), check=False)  # fmt: skip
    assert done.returncode == 2 and "output_norm: False -> True" in done.stderr, done.stderr
    ispan("train", *FAST, "--epochs", "3", "--synthetic-train", "16", "--synthetic-val", "4",
          "--no-output-norm", "--output", str(run))  # fmt: skip
    assert [r["epoch"] for r in metrics_rows(run)] == [1, 2, 3]
    assert checkpoint.load_state(last)["config"]["output_norm"] is False
    # a checkpoint whose optimizer has another group layout (an older ispan: no attention
    # groups) is refused in one line, not a traceback
    last = run / "checkpoints" / "last.pt"
    state = checkpoint.load_state(last)
    groups = state["optimizer"]["param_groups"]
    merged = {**groups[0], "params": [i for g in groups for i in g["params"]]}
    state["optimizer"]["param_groups"] = [merged]
    checkpoint.save_state(state, last)
    done = ispan("train", *FAST, "--epochs", "4", "--synthetic-train", "16", "--synthetic-val",
                 "4", "--no-output-norm", "--output", str(run), check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "optimizer state of another layout" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
