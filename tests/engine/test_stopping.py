"""Stopping well: early stopping on a plateau, a time limit and SIGTERM that leave a checkpoint
which resumes bit-identically (--deterministic, CPU), and the monitor's bookkeeping."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ispan_cli.engine import checkpoint
from ispan_cli.engine.metrics import video_loss
from ispan_cli.engine.stopping import Monitor
from tests.engine.runs import FAST, ispan, metrics_rows, popen, weights

SMALL = [*FAST, "--synthetic-train", "24", "--synthetic-val", "4", "--precise-bn", "0"]
# a plateau: no step moves the weights (lr 1e-12) nor the BN statistics (frozen_bn)
PLATEAU = {"dataset": "synthetic", "arch": "istpan_tiny", "pretrained": "none", "segments": 2,
           "input_size": 64, "batch_size": 8, "lr": 1e-12, "frozen_bn": True, "dropout": 0.0,
           "workers": 0, "device": "cpu", "synthetic_train": 8, "synthetic_val": 4,
           "precise_bn": 0, "epochs": 8, "patience": 2}  # fmt: skip


def test_monitor_counts_evaluations_without_improvement() -> None:
    m = Monitor("top1")
    rows = [0.5, 0.7, 0.7, float("nan"), 0.6, 0.8]
    improved = [m.update({"epoch": i + 1, "val_top1": v}) for i, v in enumerate(rows)]
    assert improved == [True, True, False, False, False, True]
    assert (m.best_value, m.best_epoch, m.stale) == (0.8, 6, 0)
    loss = Monitor("loss")
    assert [loss.update({"epoch": i, "val_loss": v}) for i, v in enumerate([2.0, 1.0, 1.5])] == [
        True, True, False]  # fmt: skip
    assert loss.best_value == 1.0 and loss.exhausted(1) and not loss.exhausted(2)
    assert not loss.exhausted(0)  # 0: off
    assert Monitor.from_dict(loss.to_dict()) == loss


def test_video_loss_is_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(7, 5)), rng.integers(0, 5, 7)
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    assert video_loss(logits, labels) == pytest.approx(float(expected), rel=1e-12)
    assert math.isnan(video_loss(np.zeros((0, 5)), np.zeros(0)))


def test_patience_stops_on_a_plateau(tmp_path: Path) -> None:
    """Validation plateaus from the first evaluation, so --patience 2 stops after epoch 3 of 8
    and the best model is epoch 1's (in this process: the engine's own call, no start-up)."""
    from ispan_cli.engine.launch import TrainOptions, run_training

    run = tmp_path / "run"
    settings = {**PLATEAU, "monitor": "loss", "output": str(run)}
    summary = run_training(TrainOptions(settings=settings))
    rows = metrics_rows(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    losses = [r["val_loss"] for r in rows]
    assert max(losses) - min(losses) < 1e-6  # the plateau
    state = checkpoint.load_state(run / "checkpoints" / "last.pt")
    assert state["monitor"]["best_epoch"] == 1 and state["monitor"]["stale"] == 2
    card = (run / "best" / "README.md").read_text()
    assert "## Why training stopped" in card and "did not improve in 2 evaluation(s)" in card
    assert summary.stopped.startswith("early stopping") and not summary.resumable
    # the run's report: curves embedded, the class names in the confusion matrix
    from ispan_cli.data.synthetic import LABELS
    from tests.engine.test_html_report import read_page

    page = read_page(run / "report.html")
    pngs = [src for src in page.images if src.startswith("data:image/png")]  # the curves
    assert len(pngs) == 1 and all(name in "".join(page.text) for name in LABELS)
    # the same settings again resume a run that is over: nothing more is trained
    run_training(TrainOptions(settings=settings))
    assert len(metrics_rows(run)) == 3


RUN = [*SMALL, "--epochs", "2", "--deterministic", "--dropout", "0.3", "--seed", "5"]


def _same_run(a: Path, b: Path) -> None:
    wa, wb = weights(a / "best"), weights(b / "best")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    fa = checkpoint.load_state(a / "checkpoints" / "last.pt")["model"]
    fb = checkpoint.load_state(b / "checkpoints" / "last.pt")["model"]
    for key in fa:
        assert torch.equal(fa[key], fb[key]), key
    timing = ("epoch_s", "clips_per_s", "data_wait_share")
    ra = [{k: v for k, v in r.items() if k not in timing} for r in metrics_rows(a)]
    rb = [{k: v for k, v in r.items() if k not in timing} for r in metrics_rows(b)]
    assert ra == rb


@pytest.mark.slow  # five real runs in subprocesses: about a minute alone, two on a busy machine
def test_time_limit_and_sigterm_leave_a_checkpoint_that_resumes_identically(
    tmp_path: Path,
) -> None:
    straight = tmp_path / "straight"
    ispan("train", *RUN, "--output", str(straight))
    steps = checkpoint.load_state(straight / "checkpoints" / "last.pt")["global_step"]
    assert steps == 6  # 24 clips / 8, 2 epochs

    # SIGTERM once the first step's checkpoint exists: the run stops at a later step boundary
    # with its own checkpoint, exits 0 and says how to continue
    killed = tmp_path / "sigterm"
    last = killed / "checkpoints" / "last.pt"
    proc = popen("train", *RUN, "--checkpoint-every", "1", "--output", str(killed))
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before the signal; make it longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "SIGTERM received" in err.decode() and "run the same command to resume" in err.decode()
    state = checkpoint.load_state(last)
    assert 0 < state["global_step"] < steps, state["global_step"]
    ispan("train", *RUN, "--checkpoint-every", "1", "--output", str(killed))
    _same_run(straight, killed)

    # --time-limit: a budget shorter than the run (its training time is in the metrics)
    limited = tmp_path / "limited"
    seconds = sum(r["epoch_s"] for r in metrics_rows(straight))
    done = ispan("train", *RUN, "--time-limit", f"{max(seconds / 2, 0.5):.2f}s",
                 "--output", str(limited))  # fmt: skip
    assert "--time-limit" in done.stderr and "resume" in done.stderr, done.stderr
    state = checkpoint.load_state(limited / "checkpoints" / "last.pt")
    assert state["global_step"] < steps
    # the resume has a budget of its own: long enough for the rest
    ispan("train", *RUN, "--time-limit", "1h", "--output", str(limited))
    _same_run(straight, limited)
