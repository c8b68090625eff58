"""``ispan frames`` speaks in its own options: its --help does not promise a model's K (frames
takes no --model), and --no-repeat on a short video says which --segments would work."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def three_frames(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("short") / "three.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
         "-frames:v", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_no_repeat_on_a_short_video_names_the_segments_that_work(three_frames, tmp_path):
    out = tmp_path / "png"
    result = CliRunner().invoke(
        app, ["frames", str(three_frames), "-s", "8", "--no-repeat", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: {three_frames} has too few frames (3) for 8 segments without repeating "
        "any; give --segments 3 or fewer, or drop --no-repeat (frames are then repeated "
        "and the output says so)"
    )
    assert not out.exists() or not list(out.glob("*.png"))  # nothing half-written
    ok = CliRunner().invoke(app, ["frames", str(three_frames), "-s", "3", "--no-repeat"])
    assert ok.exit_code == 0, ok.output


def test_frames_help_for_segments_does_not_speak_of_its_model():
    result = CliRunner().invoke(app, ["frames", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    line = " ".join(result.stdout.replace("│", " ").split())
    assert "Default: the model's own K" not in line  # frames has no --model
    assert "Give the --segments you classify with" in line
    # --short-side only changes the PNG files, and says what it is without it
    assert "With --out: scale the PNG files" in line and "Default: the video's own size" in line


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("a-file", "exists and is not a folder"),
        ("a-file/sub", "cannot be created (a part of its path is a file, not a folder)"),
    ],
)
def test_an_out_folder_that_cannot_be_made_is_one_usage_error(three_frames, tmp_path, where, says):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / where
    result = CliRunner().invoke(app, ["frames", str(three_frames), "-s", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: --out {out} {says}; choose another --out"
