"""A dataset never loses videos quietly: train and evaluate check every listed video first, stop
before any step when more than --max-skipped are unusable, and otherwise report how many were
skipped and why (terminal, data_check.json, metrics, model card); the check is cached per file,
so a resumed run reuses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.engine.runs import ispan, metrics_rows
from tests.video.videogen import write_pattern_video

FAST = [
    "--dataset", "folder", "--arch", "istpan_tiny", "--pretrained", "none", "--segments", "2",
    "--input-size", "64", "--batch-size", "4", "--precise-bn", "0", "--workers", "0",
    "--device", "cpu", "--quiet",
]  # fmt: skip
BROKEN = {"cut.mp4": "truncated", "page.mp4": "not_a_video", "still.avi": "too_short"}


def _video(path: Path, frames: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pattern_video(path, "mpeg4", frames, width=64, height=48)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """20 listed videos: train/ 7 + 7, val/ 3 + 3; three of the training videos are broken."""
    root = tmp_path_factory.mktemp("budget") / "data"
    for cls in ("alpha", "beta"):
        for i in range(7 if cls == "alpha" else 4):
            _video(root / "train" / cls / f"{cls}{i}.avi")
        for i in range(3):
            _video(root / "val" / cls / f"v_{cls}{i}.avi")
    beta = root / "train" / "beta"
    whole = write_pattern_video(root / "whole.mp4", "libx264", 30, width=64, height=48)
    (beta / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # no moov
    whole.unlink()
    (beta / "page.mp4").write_text("<html>404 Not Found</html>\n" * 30)
    _video(beta / "still.avi", frames=1)  # one frame: too short for K=2
    assert len(list(root.rglob("*.*"))) == 20
    return root


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory) -> tuple[Path, str]:
    run = tmp_path_factory.mktemp("runs") / "ok"
    done = ispan("train", *FAST, "--data-root", str(data), "--epochs", "1", "--output", str(run),
                 "--max-skipped", "0.2")  # fmt: skip
    return run, done.stderr


def test_three_of_twenty_broken_stops_before_training(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = ispan("train", *FAST, "--data-root", str(data), "--epochs", "1", "--output",
                 str(run), check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    error = lines[0]
    assert "3 of the 20 listed videos" in error and "15.0%" in error
    assert "--max-skipped 0.01" in error and "raise --max-skipped" in error
    for name, why in [("cut.mp4", "truncated"), ("page.mp4", "not a video"),
                      ("still.avi", "too short")]:  # fmt: skip
        assert f"{name} ({why}" in error
    # no training step ran: no checkpoint, no model; the check's findings are on disk
    assert not (run / "checkpoints").exists() and not (run / "best").exists()
    summary = json.loads((run / "data_check.json").read_text())
    assert summary["skipped"] == 3 and summary["listed"] == 20


def test_within_the_budget_it_trains_and_reports_the_skipped(trained) -> None:
    run, stderr = trained
    summary = json.loads((run / "data_check.json").read_text())
    assert summary["listed"] == 20 and summary["skipped"] == 3
    assert summary["by_reason"] == {"not_a_video": 1, "truncated": 1, "too_short": 1}
    assert {Path(f["path"]).name: f["reason"] for f in summary["files"]} == BROKEN
    rows = metrics_rows(run)
    assert rows[-1]["skipped_videos"] == 3 and rows[-1]["val_videos"] == 6
    assert rows[-1]["train_clips"] == 8  # 11 usable training videos, batches of 4
    assert "3 of 20 listed videos skipped (15.0%): 1 not a video, 1 truncated or empty, " \
           "1 too short" in stderr  # fmt: skip
    log = (run / "train.log").read_text()
    assert all(name in log for name in BROKEN)
    card = (run / "best" / "README.md").read_text()
    assert "## Data" in card and "3 of the 20 listed videos" in card and "too short" in card
    cache = [json.loads(line) for line in (run / "video_checks.jsonl").read_text().splitlines()]
    assert len(cache) == 20 and sum(c["result"]["ok"] for c in cache) == 17


def test_resume_reuses_the_cached_check(data: Path, trained, tmp_path: Path) -> None:
    first, _ = trained
    run = tmp_path / "resumed"
    shutil.copytree(first, run)
    # doctor one cached verdict (same file, same size and mtime): a resumed run that trusts the
    # cache reports it; one that decoded again would find the file fine
    cache = run / "video_checks.jsonl"
    entries = [json.loads(line) for line in cache.read_text().splitlines()]
    victim = next(e for e in entries if e["key"]["path"].endswith("v_alpha0.avi"))
    victim["result"].update(ok=False, reason="decode_error", message="doctored verdict")
    cache.write_text("".join(json.dumps(e) + "\n" for e in entries))
    done = ispan("train", *FAST, "--data-root", str(data), "--epochs", "2", "--output", str(run),
                 "--max-skipped", "0.2")  # fmt: skip
    assert "4 of 20 listed videos skipped (20.0%)" in done.stderr
    summary = json.loads((run / "data_check.json").read_text())
    assert summary["skipped"] == 4 and summary["by_reason"]["decode_error"] == 1
    assert any(f["message"] == "doctored verdict" for f in summary["files"])
    rows = metrics_rows(run)
    assert len(rows) == 2 and rows[-1]["skipped_videos"] == 4 and rows[-1]["val_videos"] == 5


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_evaluate_checks_each_split_too(data: Path, trained, tmp_path: Path) -> None:
    run, _ = trained
    root = tmp_path / "eval-data"
    shutil.copytree(data / "val", root / "val")
    (root / "val" / "beta" / "broken.avi").write_text("not a video")  # 1 of 7: over 1%
    args = ["evaluate", "--model", str(run / "best"), "--dataset", "folder", "--data-root",
            str(root), "--workers", "0", "--format", "json"]  # fmt: skip
    done = ispan(*args, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "1 of the 7 listed videos of folder split 1 (test)" in done.stderr
    assert "broken.avi (not a video)" in done.stderr
    out = tmp_path / "eval"
    done = ispan(*args, "--max-skipped", "0.2", "--output", str(out))
    split = json.loads(done.stdout)["splits"]["1"]
    assert split["videos"] == 6 and split["skipped"] == 1
    assert split["skipped_by_reason"] == {"not_a_video": 1}
    assert "split 1: 1 of 7 listed videos skipped (14.3%): 1 not a video" in done.stderr
    (line,) = (out / "skipped.txt").read_text().splitlines()
    assert line.split("\t")[:2] == [str(root / "val" / "beta" / "broken.avi"), "not_a_video"]
    assert (out / "video_checks.jsonl").is_file()


def test_max_skipped_must_be_a_fraction(data: Path, tmp_path: Path) -> None:
    done = ispan("train", *FAST, "--data-root", str(data), "--output", str(tmp_path / "r"),
                 "--max-skipped", "1.5", check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --max-skipped 1.5 is not a fraction between 0 and 1 (0.05 allows 5% of a "
        "split's videos to be skipped)"
    )


def test_the_budget_error_under_two_processes_is_one_line(data: Path, tmp_path: Path) -> None:
    # Every rank raises the budget error; the launcher's report must stay a user error (it
    # was "unexpected AttributeError" from reading a field the failure record does not have).
    done = ispan("train", *FAST, "--data-root", str(data), "--epochs", "1", "--devices", "2",
                 "--output", str(tmp_path / "run"), check=False, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and "unexpected" not in done.stderr and "Traceback" not in done.stderr
    assert "more than --max-skipped" in done.stderr or "max-skipped" in done.stderr
