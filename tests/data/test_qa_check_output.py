"""`ispan data check` output as a user reads it: no note about the demo model's labels (the check
uses only its K and frame size), and "1 video" for one."""

from __future__ import annotations

from pathlib import Path

from tests.data.trees import tiny_video
from tests.engine.runs import ispan


def test_check_of_one_video_is_one_line_without_the_demo_note(tmp_path: Path) -> None:
    video = tiny_video(tmp_path / "clip.mp4", 1, frames=4, size=16)
    done = ispan("data", "check", str(video), "--segments", "2", "--workers", "0")
    assert "synthetic demo" not in done.stderr
    assert done.stdout.startswith("1 video checked (K=2"), done.stdout
