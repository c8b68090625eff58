"""Files with several video streams: the one ffmpeg would choose, ``--stream N``, and probe."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.video import VideoError, open_video, probe

from .test_bad_inputs import _assert_one_error_line, _cli
from .videogen import pattern_frame, read_index

runner = CliRunner()
OFFSET = 1000  # stream s shows frame index i + s * OFFSET, so a frame tells its stream


def write_streams(path: Path, sizes: list[tuple[int, int]], default: int | None) -> Path:
    """One H.264 stream per size, 20 frames each; ``default``: the stream flagged default."""
    with av.open(str(path), "w") as container:
        streams = []
        for s, (width, height) in enumerate(sizes):
            stream = container.add_stream("libx264", rate=25, options={"preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.disposition = av.stream.Disposition.default if s == default else 0
            streams.append(stream)
        for i in range(20):
            for s, stream in enumerate(streams):
                img = pattern_frame(i + s * OFFSET, stream.width, stream.height)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 25)
                for packet in stream.encode(frame):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode():
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("streams")
    return {
        # no default flag: the largest picture wins, though it is not stream 0
        "largest": write_streams(root / "largest.mkv", [(64, 48), (128, 96), (96, 72)], None),
        # the default flag outweighs a larger picture (ffmpeg: +5,000,000 pixels' worth)
        "default": write_streams(root / "default.mkv", [(128, 96), (64, 48)], 1),
    }


def _stream_of(path: Path, **kw) -> int:
    with open_video(path, **kw) as reader:
        return read_index(reader.read([3])[0]) // OFFSET


def test_the_stream_ffmpeg_would_choose(files):
    assert _stream_of(files["largest"]) == 1
    assert _stream_of(files["default"]) == 1
    info = probe(files["largest"])
    assert (info.stream, info.width, info.height) == (1, 128, 96)
    assert [s["index"] for s in info.video_streams] == [0, 1, 2]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed")
@pytest.mark.parametrize("name", ["largest", "default"])
def test_ffmpeg_chooses_the_same_stream(files, name):
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(files[name]), "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    info = probe(files[name])
    assert len(raw) == info.width * info.height * 3


def test_stream_option_reads_another_stream(files):
    assert _stream_of(files["largest"], stream=2) == 2
    assert _stream_of(files["largest"], stream=0) == 0
    with open_video(files["largest"], stream=0) as reader:
        frames = reader.read([0, 19, 7])
    assert [read_index(f) for f in frames] == [0, 19, 7]
    assert probe(files["default"], stream=0).width == 128


def test_probe_lists_the_streams_and_says_which_is_used(files):
    result = runner.invoke(app, ["probe", str(files["largest"]), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["stream"] == 1
    assert [(s["index"], s["width"]) for s in doc["video_streams"]] == [(0, 64), (1, 128), (2, 96)]
    table = runner.invoke(app, ["probe", str(files["largest"]), "--stream", "2"]).stdout
    assert "video stream 2" in table and "96 x 72, used" in table
    assert "(--stream 1)" in table and "(--stream 0)" in table


def test_frames_and_classify_take_the_stream_option(files, tmp_path):
    out = tmp_path / "frames"
    args = ["frames", str(files["largest"]), "-s", "2", "--stream", "2", "-o", str(out)]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    import cv2

    for f in json.loads(result.stdout)["frames"]:
        png = cv2.imread(f["file"])[..., ::-1]
        assert png.shape == (72, 96, 3) and read_index(png) == 2 * OFFSET + f["index"]

    def scores(*extra: str) -> list[float]:
        args = ["classify", str(files["largest"]), *extra, "--format", "json", "-q"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        (record,) = json.loads(result.stdout)
        assert record["error"] is None
        return [t["score"] for t in sorted(record["topk"], key=lambda t: t["index"])]

    assert scores("--stream", "1") == scores()  # the default is stream 1
    assert scores("--stream", "0") != scores()


def test_bad_stream_choices_are_one_line_errors(files):
    with pytest.raises(VideoError, match="no video stream 5; its video streams are: 0, 1, 2"):
        open_video(files["largest"], stream=5)
    _assert_one_error_line(
        _cli("probe", str(files["largest"]), "--stream", "5"), "its video streams are: 0, 1, 2"
    )
    _assert_one_error_line(
        _cli("frames", str(files["largest"]), "--stream", "1", "--decoder", "opencv"),
        "--stream needs --decoder pyav",
    )
