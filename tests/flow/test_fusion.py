"""Late fusion of saved per-video scores, against a hand computation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.engine.fusion import fuse_files, fuse_scores
from ispan_cli.errors import ISpanError, UsageError

CLASSES = ("Jump", "Run", "Walk")
# video -> (label index, RGB logits, flow logits)
VIDEOS = {
    "Run/v1": (1, [2.0, 1.0, 0.0], [0.0, 3.0, 0.0]),
    "Walk/v2": (2, [0.0, 1.0, 3.0], [0.5, 0.0, 0.0]),
    "Jump/v3": (0, [1.0, 0.0, 0.0], [0.0, 0.0, 0.5]),
}


def _write(path: Path, stream: int, root: str, order=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in order or VIDEOS:
        label, *logits = VIDEOS[name]
        row = logits[stream]
        lines.append(json.dumps({
            "video": f"{root}/{name}.avi", "label": CLASSES[label], "label_index": label,
            "predicted": CLASSES[int(np.argmax(row))], "logits": row,
        }))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def two_streams(tmp_path):
    rgb = _write(tmp_path / "rgb" / "video_scores.jsonl", 0, "/data/UCF-101")
    # the flow run listed its videos in another order, under another root
    flow = _write(tmp_path / "flow" / "video_scores.jsonl", 1, "/mnt/ucf", ["Jump/v3", "Run/v1",
                                                                           "Walk/v2"])  # fmt: skip
    return rgb, flow


def test_fusion_matches_a_hand_computation(two_streams):
    rgb, flow = two_streams
    report = fuse_files([rgb, flow], [1, 1.5])
    # by hand, RGB + 1.5 flow: v1 [2, 5.5, 0] -> Run (right); v2 [0.75, 1, 3] -> Walk (right);
    # v3 [1, 0, 0.75] -> Jump (right). RGB alone: v1 wrong, v2 and v3 right. Flow alone: v1
    # right, v2 (Jump) and v3 (Walk) wrong.
    assert np.allclose(report.fused_scores, [[2, 5.5, 0], [0.75, 1, 3], [1, 0, 0.75]])
    assert [m.top1 for m in report.streams] == [2 / 3, 1 / 3]
    assert report.fused.top1 == 1.0
    assert report.fused.mean_class == 1.0 and report.streams[1].mean_class == pytest.approx(1 / 3)
    d = report.to_dict()
    assert d["videos"] == 3 and d["classes"] == 3 and d["streams"][1]["weight"] == 1.5


def test_softmax_fusion_sums_probabilities():
    a = np.array([[0.0, math.log(3.0)]])  # probabilities 1/4, 3/4
    b = np.array([[math.log(4.0), 0.0]])  # 4/5, 1/5
    fused = fuse_scores([a, b], [1, 2], softmax=True)
    assert np.allclose(fused, [[1 / 4 + 2 * 4 / 5, 3 / 4 + 2 / 5]])
    assert np.allclose(fuse_scores([a, b], [1, 2]), a + 2 * b)


def test_streams_must_cover_the_same_videos_with_the_same_labels(tmp_path, two_streams):
    rgb, _ = two_streams
    fewer = _write(tmp_path / "few.jsonl", 1, "/data/UCF-101", ["Run/v1", "Walk/v2"])
    with pytest.raises(ISpanError, match=r"do not score the same videos.*Jump/v3"):
        fuse_files([rgb, fewer])
    relabelled = tmp_path / "relabel.jsonl"
    rows = [json.loads(line) for line in rgb.read_text().splitlines()]
    rows[0]["label_index"], rows[0]["label"] = 2, "Walk"
    relabelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ISpanError, match="class orders differ"):
        fuse_files([rgb, relabelled])
    with pytest.raises(UsageError, match="2 weight"):
        fuse_files([rgb, rgb, rgb], [1, 2])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"video": "a"}\n')
    with pytest.raises(ISpanError, match=r"broken\.jsonl:1 is not a video score record"):
        fuse_files([rgb, broken])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200"}, timeout=60,
    )  # fmt: skip


def test_cli_takes_weights_as_the_issue_writes_them(tmp_path, two_streams):
    rgb, flow = two_streams
    done = _cli("fuse", str(rgb.parent), str(flow), "--weights", "1", "1.5", "-o",
                str(tmp_path / "fused"), "-f", "json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [s["weight"] for s in out["streams"]] == [1.0, 1.5]
    assert out["fused"]["top1"] == 1.0 and out["streams"][0]["top1"] == pytest.approx(2 / 3)
    fused = [
        json.loads(x)
        for x in (tmp_path / "fused" / "video_scores.jsonl").read_text().split("\n")
        if x
    ]
    assert [r["predicted"] for r in fused] == ["Run", "Walk", "Jump"]
    assert fused[0]["logits"] == [2.0, 5.5, 0.0]
    # the fused scores are scores again: fusing them with RGB at weight 0 gives them back
    again = fuse_files([tmp_path / "fused", rgb], [1, 0])
    assert np.allclose(again.fused_scores, [[2, 5.5, 0], [0.75, 1, 3], [1, 0, 0.75]])
    bad = _cli("fuse", str(rgb), str(flow), "--weights", "1", "x", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.startswith("error:"), bad.stderr
    assert "Traceback" not in bad.stderr


def test_evaluate_fuse_is_the_same_command(tmp_path, two_streams):
    """`ispan evaluate fuse` as the issue and evaluate's help write it, global options first."""
    rgb, flow = two_streams
    args = (str(rgb), str(flow), "--weights", "1", "1.5", "-f", "json")
    plain = _cli("fuse", *args, cwd=tmp_path)
    spelled = _cli("--debug", "evaluate", "fuse", *args, cwd=tmp_path)
    assert plain.returncode == spelled.returncode == 0, spelled.stderr
    assert json.loads(spelled.stdout) == json.loads(plain.stdout)
