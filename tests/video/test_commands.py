"""``ispan probe`` and ``ispan frames`` end to end on real files."""

from __future__ import annotations

import json

import cv2
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app

from .conftest import CASES, NUM_FRAMES, _x264
from .test_bad_inputs import _assert_one_error_line, _cli
from .videogen import read_index

runner = CliRunner()


def test_probe_json(h264_video):
    result = runner.invoke(app, ["probe", str(h264_video), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["num_frames"] == NUM_FRAMES and doc["codec"] == "h264"
    assert doc["width"] == 96 and doc["height"] == 72 and doc["rotation"] == 0
    assert doc["variable_frame_rate"] is False and doc["truncated"] is False
    assert doc["decoder"] == "pyav"


def test_probe_table_and_opencv_decoder(h264_video):
    result = runner.invoke(app, ["probe", str(h264_video), "--decoder", "opencv"])
    assert result.exit_code == 0, result.output
    for word in ("opencv", "96 x 72", f"{NUM_FRAMES} counted", "25.000 fps"):
        assert word in result.stdout


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_frames_writes_the_sampled_frames_named_by_index(decoder, case_video, tmp_path):
    path = case_video(CASES[4])  # MPEG-4 part 2 AVI, like UCF101
    out = tmp_path / "frames"
    args = ["frames", str(path), "--segments", "5", "--out", str(out), "--format", "json"]
    result = runner.invoke(app, [*args, "--decoder", decoder])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected = [int(NUM_FRAMES / 5 * k + NUM_FRAMES / 10) for k in range(5)]
    assert [f["index"] for f in doc["frames"]] == expected
    assert [f["timestamp"] for f in doc["frames"]] == pytest.approx([i / 25 for i in expected])
    assert doc["repeated"] is False and doc["note"] is None
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in expected]
    for frame in doc["frames"]:
        png = cv2.cvtColor(cv2.imread(frame["file"]), cv2.COLOR_BGR2RGB)
        assert read_index(png) == frame["index"]


def test_frames_on_a_short_video_repeats_and_says_so(make_video, tmp_path):
    path = make_video("short3", "libx264", "mp4", num_frames=3, options=_x264())
    result = runner.invoke(app, ["frames", str(path), "--segments", "8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "repeated" in result.stdout
    assert len(list(tmp_path.glob("*.png"))) == 3
    doc = json.loads(runner.invoke(app, ["frames", str(path), "-f", "json"]).stdout)
    assert doc["repeated"] is True and "repeated" in doc["note"]
    assert [f["index"] for f in doc["frames"]] == [0, 0, 0, 1, 1, 2, 2, 2]
    _assert_one_error_line(_cli("frames", str(path), "--no-repeat"), "too few frames")


def test_frames_scaled_output(h264_video, tmp_path):
    args = ["frames", str(h264_video), "--segments", "2", "--short-side", "36", "--out"]
    result = runner.invoke(app, [*args, str(tmp_path)])
    assert result.exit_code == 0, result.output
    images = [cv2.imread(str(p)) for p in sorted(tmp_path.glob("*.png"))]
    assert [im.shape for im in images] == [(36, 48, 3)] * 2


def test_help_lists_the_decoders():
    result = runner.invoke(app, ["frames", "--help"])
    assert result.exit_code == 0
    for word in ("--segments", "--out", "--decoder", "auto", "pyav", "opencv"):
        assert word in result.stdout
