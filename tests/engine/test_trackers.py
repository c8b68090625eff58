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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(tmp_path: Path):
    """A real `mlflow server` on 127.0.0.1, ready when its /health answers."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen(
        [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--default-artifact-root", (tmp_path / "artifacts").as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("mlflow server did not start")


@pytest.mark.mlflow
def test_mlflow_against_a_real_server_and_a_server_gone_mid_run(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from ispan_cli.engine.launch import TrainOptions, run_training

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a dead server fails at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    proc, url = _mlflow_server(tmp_path)
    try:
        out = tmp_path / "run"
        settings = {**SETTINGS, "log": "mlflow", "mlflow_uri": url, "epochs": 2,
                    "experiment": "tests", "output": str(out)}  # fmt: skip
        run_training(TrainOptions(settings=settings))
        client = MlflowClient(tracking_uri=url)
        (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
        assert run.data.params["lr"] == "0.01" and run.data.params["arch"] == "istpan_tiny"
        history = client.get_metric_history(run.info.run_id, "val_top1")
        rows = metrics_rows(out)
        assert [(m.step, m.value) for m in history] == [(r["step"], r["val_top1"]) for r in rows]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "best")}
        assert "best/model.safetensors" in artifacts and "best/README.md" in artifacts
        # the server goes away mid-run: one warning, and the run finishes
        gone = tmp_path / "gone"
        messages: list[str] = []

        def reporter(event) -> None:
            if event.kind == "step" and event.step == 2 and proc.poll() is None:
                proc.kill()
                proc.wait()
            if event.kind == "message":
                messages.append(event.data["text"])

        summary = run_training(TrainOptions(settings={**settings, "output": str(gone)}), reporter)
        assert summary.epochs == 2 and (gone / "best" / "model.safetensors").is_file()
        assert len([m for m in messages if m.startswith("warning: mlflow failed")]) == 1
    finally:
        proc.kill()


@pytest.mark.wandb
def test_wandb_offline_run_folder_holds_the_metrics(tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    import json

    from ispan_cli.engine.launch import TrainOptions, run_training

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    run_training(TrainOptions(settings={**SETTINGS, "log": "wandb", "epochs": 1,
                                        "output": str(out)}))  # fmt: skip
    (folder,) = (out / "wandb").glob("offline-run-*")
    summary = json.loads((folder / "files" / "wandb-summary.json").read_text())
    assert summary["val/top1"] == pytest.approx(metrics_rows(out)[-1]["val_top1"])
