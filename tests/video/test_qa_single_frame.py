"""A one-frame video lasts one frame interval, as ffprobe and the OpenCV backend say: the PyAV
backend measured the span between frames, which a single frame does not have, and said 0 s."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ispan_cli.video import probe

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "one.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
         "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_a_one_frame_video_lasts_one_frame_interval(one_frame, decoder):
    info = probe(one_frame, decoder)
    assert info.num_frames == 1
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(0.04)
