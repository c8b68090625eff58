"""Fixtures: real encoded videos (generated once per session with PyAV) whose pixels encode
the frame index, one per codec/container case in issue 3."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import pytest

from .videogen import write_pattern_video

NUM_FRAMES = 150
GOP = 24  # several keyframes per file, so fetches both decode forward and seek


@dataclass(frozen=True)
class Case:
    """One codec in one container."""

    name: str
    codec: str
    ext: str
    pix_fmt: str = "yuv420p"
    width: int = 96
    height: int = 72
    options: dict[str, str] = field(default_factory=dict)
    bit_depth: int = 8


def _x264(**extra: str) -> dict[str, str]:
    # veryfast keeps B-frames (reordering) while encoding quickly
    return {"preset": "veryfast", "g": str(GOP), "bf": "2", **extra}


def _x265() -> dict[str, str]:
    return {"preset": "ultrafast", "x265-params": f"log-level=error:keyint={GOP}:bframes=2"}


CASES = [
    Case("h264-mp4", "libx264", "mp4", options=_x264()),
    Case("h264-mkv", "libx264", "mkv", options=_x264()),
    Case("hevc-mp4", "libx265", "mp4", options=_x265()),
    Case("hevc-mkv", "libx265", "mkv", options=_x265()),
    Case("mpeg4-avi", "mpeg4", "avi", options={"g": str(GOP), "bf": "2", "qscale": "3"}),
    # H.264 in AVI: no stored timestamps, B-frames reordered (how NTU RGB+D is encoded)
    Case("h264-avi", "libx264", "avi", options=_x264()),
    Case("vp9-webm", "libvpx-vp9", "webm", options={"g": str(GOP), "deadline": "realtime",
                                                     "cpu-used": "8", "crf": "20", "b": "0"}),
    Case("mjpeg-avi", "mjpeg", "avi", pix_fmt="yuvj420p", options={"qscale": "3"}),
    Case("h264-10bit-mkv", "libx264", "mkv", pix_fmt="yuv420p10le", options=_x264(),
         bit_depth=10),
    Case("hevc-10bit-mp4", "libx265", "mp4", pix_fmt="yuv420p10le", options=_x265(),
         bit_depth=10),
    Case("vp9-odd-webm", "libvpx-vp9", "webm", width=97, height=73,
         options={"g": str(GOP), "deadline": "realtime", "cpu-used": "8"}),
    Case("mpeg4-odd-avi", "mpeg4", "avi", width=97, height=73, options={"g": str(GOP)}),
    Case("h264-444-odd-mkv", "libx264", "mkv", pix_fmt="yuv444p", width=97, height=73,
         options=_x264()),
]  # fmt: skip


def require_encoder(codec: str) -> None:
    """Skips the test when this PyAV's FFmpeg cannot encode ``codec`` (never fakes the file)."""
    if codec not in av.codecs_available:
        pytest.skip(f"the FFmpeg bundled with PyAV {av.__version__} has no {codec} encoder")
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"the FFmpeg bundled with PyAV {av.__version__} has no {codec} encoder")


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir):
    """make_video(name, codec, ext, **write_pattern_video kwargs) -> path, cached by name."""
    made: dict[str, Path] = {}

    def make(name: str, codec: str, ext: str, **kwargs) -> Path:
        if name not in made:
            require_encoder(codec)
            made[name] = write_pattern_video(video_dir / f"{name}.{ext}", codec, **kwargs)
        return made[name]

    return make


@pytest.fixture(scope="session")
def case_video(make_video):
    """case_video(case) -> path of that case's NUM_FRAMES-frame pattern video."""

    def get(case: Case) -> Path:
        return make_video(
            case.name,
            case.codec,
            case.ext,
            num_frames=NUM_FRAMES,
            width=case.width,
            height=case.height,
            pix_fmt=case.pix_fmt,
            options=case.options,
        )

    return get


@pytest.fixture(scope="session")
def h264_video(case_video) -> Path:
    return case_video(CASES[0])


@pytest.fixture(scope="session")
def vfr_video(make_video) -> tuple[Path, list[int]]:
    """H.264 MKV with irregular frame durations (milliseconds), and the pts written."""
    durations = [40, 40, 120, 20, 60, 33, 200, 40, 17, 90]
    pts = [0]
    for i in range(59):
        pts.append(pts[-1] + durations[i % len(durations)])
    path = make_video(
        "vfr",
        "libx264",
        "mkv",
        num_frames=len(pts),
        pts=pts,
        time_base=Fraction(1, 1000),
        options=_x264(),
    )
    return path, pts
