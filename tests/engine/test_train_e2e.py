"""One epoch end to end on real video files (written by `ispan data synth`), then evaluate,
then classify with the trained model folder."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.engine.runs import ispan, metrics_rows


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    ispan("data", "synth", "--out", str(out), "--train", "20", "--val", "10")
    return out


def test_data_synth_layout(synth_folder: Path) -> None:
    from ispan_cli.data import load_dataset
    from ispan_cli.data.synthetic import LABELS

    data = load_dataset("folder", str(synth_folder))
    assert data.classes == tuple(sorted(LABELS))
    assert len(data.train) == 20 and len(data.test) == 10
    boxes = [json.loads(line) for line in (synth_folder / "boxes.jsonl").read_text().splitlines()]
    assert len(boxes) == 30 and all(len(b["boxes"]) == 32 for b in boxes)
    done = ispan("data", "synth", "--out", str(synth_folder), check=False)
    assert done.returncode == 1 and "not empty" in done.stderr


def test_train_evaluate_classify(synth_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # one unreadable file in the training set: counted, logged, skipped (1 of 31 listed: within
    # --max-skipped 0.05; tests/engine/test_skip_budget.py covers the budget itself)
    bad = synth_folder / "train" / "synthetic-disc-vertical" / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    try:
        ispan("train", "--dataset", "folder", "--data-root", str(synth_folder),
              "--arch", "istpan_tiny", "--pretrained", "none", "--epochs", "1",
              "--batch-size", "7", "--segments", "3", "--workers", "1", "--device", "cpu",
              "--output", str(run), "--max-skipped", "0.05")  # fmt: skip
    finally:
        bad.unlink()
    rows = metrics_rows(run)
    assert len(rows) == 1 and rows[0]["val_videos"] == 10 and rows[0]["skipped_videos"] == 1
    assert "broken.mp4" in (run / "train.log").read_text()
    assert (run / "metrics.csv").read_text().count("\n") == 2
    assert (run / "curves.png").stat().st_size > 1000
    best = run / "best"
    config = json.loads((best / "config.json").read_text())
    assert config["model"]["num_segments"] == 3
    assert config["preprocessing"]["crop"] == 112
    assert config["metrics"]["top1"] == pytest.approx(rows[0]["val_top1"])
    card = (best / "README.md").read_text()
    assert "ispan train --dataset folder" in card and "synthetic" in card.lower()

    # evaluate: its own scoring must reproduce the training-time validation exactly
    out = tmp_path / "eval"
    done = ispan("evaluate", "--model", str(best), "--dataset", "folder", "--data-root",
                 str(synth_folder), "--output", str(out), "--format", "json")  # fmt: skip
    summary = json.loads(done.stdout)
    assert summary["splits"]["1"]["videos"] == 10
    assert summary["splits"]["1"]["top1"] == pytest.approx(rows[0]["val_top1"])
    scores = [json.loads(line) for line in (out / "video_scores.jsonl").read_text().splitlines()]
    logits = np.array([s["logits"] for s in scores])
    labels = np.array([s["label_index"] for s in scores])
    assert (logits.argmax(1) == labels).mean() == pytest.approx(summary["splits"]["1"]["top1"])
    confusion = np.loadtxt(out / "confusion.csv", delimiter=",", skiprows=1, usecols=range(1, 6))
    assert confusion.sum() == 10 and np.trace(confusion) == round(
        10 * summary["splits"]["1"]["top1"]
    )
    assert (out / "confusion.png").is_file() and (out / "per_class.csv").is_file()
    # the command as typed is recorded, and shown on the report
    command = json.loads((out / "metrics.json").read_text())["command"]
    assert command == shlex.join(["ispan", "evaluate", "--model", str(best), "--dataset",
                                  "folder", "--data-root", str(synth_folder), "--output",
                                  str(out), "--format", "json"])  # fmt: skip
    assert html.escape(command) in (out / "report.html").read_text()

    # classify loads the folder and agrees with evaluate's per-video scores
    first = scores[0]
    done = ispan("classify", first["video"], "--model", str(best), "--format", "json")
    record = json.loads(done.stdout)
    record = record[0] if isinstance(record, list) else record
    assert record["topk"][0]["label"] == first["predicted"]
