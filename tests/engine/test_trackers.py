"""Experiment trackers: names checked, a missing extra is one line, a failing tracker warns once
and training goes on; TensorBoard's events read back with its own EventAccumulator (the right
scalars at the right steps, the confusion and attention images, a resume that continues the same
run); MLflow against a real `mlflow server` on 127.0.0.1 (read back through its client, a resume
in the same MLflow run, only rank 0 logging, the server killed mid-run); W&B in offline mode (the
run file read back record by record)."""

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

    from ispan_cli.data import load_dataset
    from ispan_cli.engine.launch import TrainOptions, run_training
    from ispan_cli.engine.report_images import SHEET_SHORT
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
    # the attention overlays of the same few validation clips at each evaluation: one of each
    # of the first classes, K frames of SHEET_SHORT pixels side by side
    val_items = load_dataset("synthetic", None, 1, (20, 4)).test
    shown = min(trackers.ATTENTION_CLIPS, len({i.label for i in val_items}))
    attention = sorted(t for t in tags["images"] if t.startswith("val/attention/"))
    assert attention == [f"val/attention/{i}" for i in range(shown)]
    for tag in attention:
        pictures = events.Images(tag)
        assert [p.step for p in pictures] == [5, 10]
        assert pictures[0].height == SHEET_SHORT + 2  # contact_sheet pads each line by 2
        assert pictures[0].width >= 2 * SHEET_SHORT  # K=2 frames, at least square
    # the time inside the trackers, measured: in the steps, and drawing and logging the images
    assert all(r["tracker_share"] > 0 and r["tracker_eval_s"] > 0 for r in rows)


@pytest.mark.tensorboard
@pytest.mark.parametrize(("share", "want"), [(1e-9, [5, 15]), (1e9, [5, 10, 15])])
def test_the_trackers_images_keep_to_their_share_of_the_run(tmp_path, monkeypatch, share, want):
    """Drawing the images takes about a second: after one that took c s, the next comes once
    c / IMAGE_SHARE s have passed; the first evaluation's and the last epoch's always."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ispan_cli.engine import tracker_images
    from ispan_cli.engine.launch import TrainOptions, run_training

    monkeypatch.setattr(tracker_images, "IMAGE_SHARE", share)
    out = tmp_path / "run"
    run_training(TrainOptions(settings={**SETTINGS, "epochs": 3, "output": str(out)}))
    events = EventAccumulator(str(out / trackers.TB_DIR), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("val/top1")] == [5, 10, 15]  # every evaluation
    assert [i.step for i in events.Images("val/confusion")] == want
    assert [i.step for i in events.Images("val/attention/0")] == want


def test_attention_clips_are_fixed_one_per_class() -> None:
    from ispan_cli.data.items import VideoItem

    items = [VideoItem(f"v{i}", label) for i, label in enumerate([2, 0, 2, 1, 0, 3])]
    chosen = trackers.attention_clips(items, ["a", "b", "c", "d"], n=3)
    assert [(v.path, v.label) for v in chosen] == [("v1", "a"), ("v3", "b"), ("v0", "c")]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A process group: `mlflow server` and the web server processes it starts."""

    def __init__(self, proc) -> None:
        self.proc = proc

    def kill(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its children too, or they keep serving
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None


def _mlflow_server(tmp_path: Path) -> tuple[_Server, str]:
    """A real `mlflow server` on 127.0.0.1, ready when its /health answers."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    # no job runner (its worker processes): the tests only log
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = _Server(subprocess.Popen(
        [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--default-artifact-root", (tmp_path / "artifacts").as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    ))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and server.alive():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError("mlflow server did not start")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    pytest.importorskip("mlflow")
    server, url = _mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield url
    server.kill()


@pytest.fixture
def quick_failures(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a dead server fails at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.mark.mlflow
def test_mlflow_read_back_through_its_client_and_a_resume_continues_the_run(
    tmp_path, mlflow_server, quick_failures
) -> None:
    from mlflow.tracking import MlflowClient

    from ispan_cli.engine import checkpoint as ckpt
    from ispan_cli.engine.launch import TrainOptions, run_training
    from ispan_cli.engine.trainer import TRACK_EVERY

    out = tmp_path / "run"
    settings = {**SETTINGS, "log": "mlflow", "mlflow_uri": mlflow_server, "experiment": "read",
                "run_name": "first", "output": str(out)}  # fmt: skip
    run_training(TrainOptions(settings={**settings, "epochs": 1}))
    run_training(TrainOptions(settings={**settings, "epochs": 2}))  # resumes the run
    client = MlflowClient(tracking_uri=mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("read").experiment_id])
    state = ckpt.load_state(out / ckpt.CHECKPOINTS / ckpt.LAST)
    assert state["trackers"] == {"mlflow": run.info.run_id}
    assert run.info.run_name == "first" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.01" and run.data.params["arch"] == "istpan_tiny"
    assert run.data.params["epochs"] == "1"  # params are write-once: the first run's
    rows = metrics_rows(out)
    history = client.get_metric_history(run.info.run_id, "val_top1")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["val_top1"]) for r in rows]
    loss = client.get_metric_history(run.info.run_id, "train_epoch_loss")
    assert [m.value for m in loss] == pytest.approx([r["train_loss"] for r in rows], rel=1e-6)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(TRACK_EVERY, 11, TRACK_EVERY))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "best")}
    assert {"best/model.safetensors", "best/README.md", "best/config.json"} <= artifacts
    for step in (5, 10):
        images = {a.path for a in client.list_artifacts(run.info.run_id, f"images/{step}")}
        assert f"images/{step}/confusion.png" in images
        assert f"images/{step}/attention_0.jpg" in images
    # the card uploaded is the run's own, byte for byte
    local = Path(client.download_artifacts(run.info.run_id, "best/README.md", str(tmp_path)))
    assert local.read_bytes() == (out / "best" / "README.md").read_bytes()


@pytest.mark.mlflow
@pytest.mark.slow  # two processes
def test_mlflow_only_rank_0_logs(tmp_path, mlflow_server, quick_failures) -> None:
    from mlflow.tracking import MlflowClient

    from ispan_cli.engine.launch import TrainOptions, run_training

    out = tmp_path / "run"
    settings = {**SETTINGS, "log": "mlflow", "mlflow_uri": mlflow_server, "experiment": "ranks",
                "epochs": 1, "output": str(out)}  # fmt: skip
    run_training(TrainOptions(settings=settings, devices=2))
    client = MlflowClient(tracking_uri=mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("ranks").experiment_id])
    rows = metrics_rows(out)
    history = client.get_metric_history(run.info.run_id, "val_top1")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["val_top1"]) for r in rows]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert len(steps) == len(set(steps)) > 0  # one process's values, once each


@pytest.mark.mlflow
def test_mlflow_server_killed_mid_run_warns_once_and_training_finishes(
    tmp_path, quick_failures
) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")  # the tracker that goes on
    from ispan_cli.engine.launch import TrainOptions, run_training

    server, url = _mlflow_server(tmp_path)
    try:
        gone = tmp_path / "gone"
        settings = {**SETTINGS, "log": "mlflow,tensorboard", "mlflow_uri": url, "epochs": 2,
                    "output": str(gone)}  # fmt: skip
        messages: list[str] = []

        def reporter(event) -> None:
            if event.kind == "step" and event.step == 2 and server.alive():
                server.kill()
            if event.kind == "message":
                messages.append(event.data["text"])

        summary = run_training(TrainOptions(settings=settings), reporter)
        assert not server.alive()  # it was killed mid-run, not after
        assert summary.epochs == 2 and (gone / "best" / "model.safetensors").is_file()
        warned = [m for m in messages if "mlflow" in m and m.startswith("warning:")]
        assert len(warned) == 1 and warned[0].startswith("warning: mlflow failed ("), warned
        assert "train.log" in {p.name for p in gone.iterdir()}
        assert "tracker mlflow failed" in (gone / "train.log").read_text()
        # the other tracker goes on: TensorBoard holds both epochs
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(gone / trackers.TB_DIR))
        events.Reload()
        assert [e.step for e in events.Scalars("val/top1")] == [5, 10]
    finally:
        server.kill()


@pytest.mark.mlflow
def test_mlflow_without_a_uri_writes_a_store_in_the_run_folder(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from ispan_cli.engine.launch import TrainOptions, run_training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    run_training(TrainOptions(settings={**SETTINGS, "log": "mlflow", "epochs": 1,
                                        "output": str(out)}))  # fmt: skip
    store = out / trackers.MLRUNS_DIR
    client = MlflowClient(tracking_uri=f"sqlite:///{store / trackers.MLFLOW_DB}")
    (run,) = client.search_runs([client.get_experiment_by_name("ispan").experiment_id])
    assert run.info.run_name == "run"  # the run folder's name
    history = client.get_metric_history(run.info.run_id, "val_top1")
    assert [m.value for m in history] == pytest.approx([metrics_rows(out)[-1]["val_top1"]])
    # the artifacts lie in the run folder too, not in the working directory
    uploaded = store / "artifacts" / run.info.run_id / "artifacts" / "best" / "README.md"
    assert uploaded.read_bytes() == (out / "best" / "README.md").read_bytes()


def _wandb_records(path: Path):
    """The records of a W&B run file (``run-<id>.wandb``): W&B's LevelDB-style log (32 KiB
    blocks of records, each a 7-byte header: CRC, length, kind) of protobuf ``Record``s."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:  # zeros to the block's end
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or the LAST piece: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _wandb_history(folder: Path) -> tuple[str, list[dict], dict]:
    """(run id, history rows, config) of an offline W&B run folder."""
    import json

    (run_file,) = folder.glob("run-*.wandb")
    run_id, history, config = "", [], {}
    for record in _wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            history.append(
                {(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                 for i in record.history.item}
            )  # fmt: skip
        elif kind == "config":
            for i in record.config.update:
                config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return run_id, history, config


@pytest.mark.wandb
def test_wandb_offline_run_folder_holds_the_metrics_and_a_resume_the_same_run(
    tmp_path, monkeypatch
) -> None:
    pytest.importorskip("wandb")
    from ispan_cli.engine import checkpoint as ckpt
    from ispan_cli.engine.launch import TrainOptions, run_training

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    settings = {**SETTINGS, "log": "wandb", "output": str(out)}
    run_training(TrainOptions(settings={**settings, "epochs": 1}))
    run_training(TrainOptions(settings={**settings, "epochs": 2}))  # resumes the run
    rows = metrics_rows(out)
    folders = sorted((out / "wandb").glob("offline-run-*"))
    assert len(folders) == 2  # one per process that ran, both for the same W&B run
    state = ckpt.load_state(out / ckpt.CHECKPOINTS / ckpt.LAST)
    run_id = state["trackers"]["wandb"]
    found = [_wandb_history(f) for f in folders]
    assert [f[0] for f in found] == [run_id, run_id]
    history = [h for f in found for h in f[1]]
    val = [(h["_step"], h["val/top1"]) for h in history if "val/top1" in h]
    assert val == [(r["step"], pytest.approx(r["val_top1"])) for r in rows]
    loss = [h["train_epoch/loss"] for h in history if "train_epoch/loss" in h]
    assert loss == pytest.approx([r["train_loss"] for r in rows], rel=1e-6)
    assert found[0][2]["lr"] == 0.01 and found[0][2]["arch"] == "istpan_tiny"
    images = [h for h in history if h.get("val/confusion/_type") == "image-file"]
    assert [h["_step"] for h in images] == [5, 10]
    for h in images:
        assert (folders[0 if h["_step"] == 5 else 1] / "files" / h["val/confusion/path"]).is_file()
