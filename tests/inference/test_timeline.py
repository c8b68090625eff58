"""Timeline mode: sliding windows over a long video, streamed; --merge joins equal windows."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.inference.timeline import merge_windows
from tests.inference.schema import check_record
from tests.video.videogen import write_pattern_video

runner = CliRunner()
FPS, SECONDS = 10, 20


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return write_pattern_video(path, "libx264", FPS * SECONDS, width=96, height=72, rate=FPS)


def test_windows_cover_the_video_and_use_frames_inside_them(long_video):
    result = runner.invoke(
        app,
        [
            "classify",
            str(long_video),
            "--window",
            "3",
            "--stride",
            "2",
            "-f",
            "jsonl",
            "-q",
            "--segments",
            "4",
            "-b",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    # independent: starts every 2 s while a full window fits, plus one aligned to the end
    starts = list(np.arange(0, SECONDS - 3 + 1e-9, 2.0))
    if starts[-1] + 3 < SECONDS:
        starts.append(SECONDS - 3)
    assert [r["window"]["start"] for r in records] == pytest.approx(starts)
    assert [r["window"]["index"] for r in records] == list(range(len(starts)))
    for rec in records:
        check_record(rec, topk=5, segments=4)
        lo, hi = rec["window"]["start"], rec["window"]["end"]
        assert hi - lo == pytest.approx(3.0)
        assert all(lo - 1e-6 <= t < hi for t in rec["frames"]["timestamps"])
        # frame index i is shown at i / FPS seconds in this constant-rate file
        assert rec["frames"]["timestamps"] == pytest.approx(
            [i / FPS for i in rec["frames"]["indices"]]
        )


def test_merge_joins_the_placeholder_windows_into_segments(long_video):
    result = runner.invoke(
        app, ["classify", str(long_video), "--window", "2", "--merge", "-f", "jsonl", "-q"]
    )
    assert result.exit_code == 0, result.output
    segments = [json.loads(line) for line in result.stdout.splitlines()]
    # the segments tile the video with alternating labels
    assert segments[0]["segment"]["start"] == 0 and segments[-1]["segment"]["end"] == SECONDS
    assert sum(s["segment"]["windows"] for s in segments) == SECONDS // 2
    for a, b in itertools.pairwise(segments):
        assert a["label"] != b["label"] and a["segment"]["end"] == b["segment"]["start"]


def _window(path, i, label, score, error=None):
    rec = {
        "input": path,
        "model": {},
        "runtime": "torch",
        "device": "cpu",
        "precision": "fp32",
        "window": {"index": i, "start": float(i), "end": i + 2.0},
        "error": error,
        "topk": [] if error else [{"rank": 1, "index": ord(label), "label": label, "score": score}],
    }
    return rec


def test_merge_windows_groups_runs_per_input_and_passes_errors():
    records = [
        _window("a", 0, "x", 0.5),
        _window("a", 1, "x", 0.7),
        _window("a", 2, "y", 0.9),
        _window("a", 3, "", 0, error="decode failed"),
        _window("a", 4, "y", 0.4),
        _window("b", 0, "y", 0.6),
    ]
    merged = list(merge_windows(records))
    assert [(m["input"], m.get("label"), m.get("segment", {}).get("windows")) for m in merged] == [
        ("a", "x", 2),
        ("a", "y", 1),
        ("a", None, None),
        ("a", "y", 1),
        ("b", "y", 1),
    ]
    assert merged[0]["segment"] == {"start": 0.0, "end": 3.0, "windows": 2}
    assert merged[0]["score"] == pytest.approx(0.6)
    assert merged[2]["error"] == "decode failed"


def test_timeline_options_need_a_window(long_video):
    result = runner.invoke(app, ["classify", str(long_video), "--merge"])
    assert result.exit_code == 2
    assert "need --window" in result.output
