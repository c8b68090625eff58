"""Experiment trackers: names checked, a missing extra is one line, a failing tracker warns once
and training goes on; TensorBoard's events read back with its own EventAccumulator (the right
scalars at the right steps, the confusion image, a resume that continues the same run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ispan_cli.engine import trackers
from ispan_cli.errors import UsageError
from tests.engine.runs import metrics_rows


def test_tracker_names_and_missing_extras() -> None:
    assert trackers.parse_trackers(" TensorBoard,mlflow,tensorboard") == ("tensorboard", "mlflow")
    with pytest.raises(UsageError, match="not a tracker; choose from tensorboard, mlflow, wandb"):
        trackers.parse_trackers("tensorboard,neptune")
    missing = [n for n in trackers.TRACKERS if importlib.util.find_spec(n) is None]
    for name in missing:
        with pytest.raises(UsageError, match=rf"pip install 'ispan\[{name}\]'"):
            trackers.check_installed((name,))


class _Recorder:
    def __init__(self, name: str, fail_at: int | None = None) -> None:
        self.name, self.run_id, self.fail_at, self.steps = name, f"id-{name}", fail_at, []

    def metrics(self, values, step) -> None:
        if self.fail_at is not None and step >= self.fail_at:
            raise ConnectionError("server gone\nmore detail")
        self.steps.append(step)

    def close(self) -> None:
        pass


def test_a_failing_tracker_warns_once_and_the_others_go_on() -> None:
    warnings: list[str] = []
    good, bad = _Recorder("good"), _Recorder("bad", fail_at=3)
    group = trackers.Trackers([bad, good], warnings.append)
    for step in range(1, 7):
        group.metrics({"loss": 1.0 / step, "nan": float("nan")}, step)
    group.close()
    assert warnings == ["warning: bad failed (server gone); training goes on without it"]
    assert good.steps == [1, 2, 3, 4, 5, 6] and bad.steps == [1, 2]
    assert group.run_ids() == {"good": "id-good"}


SETTINGS = {"dataset": "synthetic", "arch": "istpan_tiny", "pretrained": "none", "segments": 2,
            "input_size": 64, "batch_size": 4, "lr": 0.01, "dropout": 0.0, "workers": 0,
            "device": "cpu", "synthetic_train": 20, "synthetic_val": 4, "precise_bn": 0,
            "log": "tensorboard"}  # fmt: skip


@pytest.mark.tensorboard
def test_tensorboard_events_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ispan_cli.engine.launch import TrainOptions, run_training
    from ispan_cli.engine.trainer import TRACK_EVERY

    out = tmp_path / "run"
    run_training(TrainOptions(settings={**SETTINGS, "epochs": 1, "output": str(out)}))
    # a resume continues the same TensorBoard run (the same folder, nothing duplicated)
    run_training(TrainOptions(settings={**SETTINGS, "epochs": 2, "output": str(out)}))
    rows = metrics_rows(out)
    events = EventAccumulator(str(out / trackers.TB_DIR), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    val = events.Scalars("val/top1")
    assert [e.step for e in val] == [r["step"] for r in rows] == [5, 10]
    assert [e.value for e in val] == pytest.approx([r["val_top1"] for r in rows])
    loss = events.Scalars("train_epoch/loss")
    assert [e.value for e in loss] == pytest.approx([r["train_loss"] for r in rows], rel=1e-6)
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(TRACK_EVERY, 11, TRACK_EVERY))
    assert {"lr/main", "lr/attention", "train/ce", "train/aux_interaction"} <= set(tags["scalars"])
    images = events.Images("val/confusion")
    assert [i.step for i in images] == [5, 10] and images[0].width > 100
    assert "config/text_summary" in tags["tensors"]
