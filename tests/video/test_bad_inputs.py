"""Bad input never hangs and never shows a traceback: one error type and one line per case."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.video import (
    EmptyVideoError,
    NotAFileError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    TSNSampler,
    UnreadableVideoError,
    VideoError,
    VideoNotFoundError,
    open_video,
    probe,
    sample_video,
)

from .conftest import _x264
from .videogen import read_index, write_audio_only


def _cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ISPAN_DEBUG"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ispan_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,  # "never hangs": a hang fails the test instead of blocking the run
        env=env,
    )


def _assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _bad_files(tmp: Path, make_video) -> dict[str, tuple[Path, type[VideoError], str]]:
    """name -> (path, expected error type, a word the message must contain)."""
    out: dict[str, tuple[Path, type[VideoError], str]] = {}
    out["missing"] = (tmp / "nope.mp4", VideoNotFoundError, "does not exist")
    (tmp / "folder.mp4").mkdir()
    out["directory"] = (tmp / "folder.mp4", NotAFileError, "folder")
    (tmp / "empty.mp4").write_bytes(b"")
    out["zero-byte"] = (tmp / "empty.mp4", EmptyVideoError, "0 bytes")
    (tmp / "page.mp4").write_text("<html><body>404 Not Found</body></html>\n" * 20)
    out["text-with-video-extension"] = (tmp / "page.mp4", NotAVideoError, "not a video")
    import cv2

    cv2.imwrite(str(tmp / "photo.png"), np.full((32, 32, 3), 128, np.uint8))
    shutil.move(tmp / "photo.png", tmp / "photo.mp4")
    out["image-with-video-extension"] = (tmp / "photo.mp4", NotAVideoError, "still image")
    out["audio-only"] = (write_audio_only(tmp / "song.m4a"), NoVideoStreamError, "audio")
    whole = make_video("trunc-src-mp4", "libx264", "mp4", num_frames=60, options=_x264())
    cut = tmp / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # index (moov) is lost
    out["truncated-mp4"] = (cut, TruncatedVideoError, "truncated")
    mkv = make_video("trunc-src-mkv", "libx264", "mkv", num_frames=60, options=_x264())
    head = tmp / "head.mkv"
    head.write_bytes(mkv.read_bytes()[:200])  # the header and no frames
    out["truncated-mkv-header-only"] = (head, TruncatedVideoError, "truncated")
    os.mkfifo(tmp / "pipe.mp4")
    out["fifo"] = (tmp / "pipe.mp4", NotAFileError, "not a regular file")
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, make_video):
    return _bad_files(tmp_path_factory.mktemp("bad"), make_video)


CASES = [
    "missing",
    "directory",
    "zero-byte",
    "text-with-video-extension",
    "image-with-video-extension",
    "audio-only",
    "truncated-mp4",
    "truncated-mkv-header-only",
    "fifo",
]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_library_raises_the_case_error(name, decoder, bad_files):
    path, error, word = bad_files[name]
    # OpenCV cannot tell audio-only or images from other unreadable files: a VideoError still
    expected = error if decoder == "pyav" or name in CASES[:3] + CASES[-1:] else VideoError
    with pytest.raises(expected) as info:
        open_video(path, decoder)
    if expected is error:
        assert word in str(info.value)


@pytest.mark.parametrize("name", CASES)
def test_cli_prints_one_error_line(name, bad_files):
    path, _, word = bad_files[name]
    _assert_one_error_line(_cli("probe", str(path)), word)


@pytest.mark.parametrize("name", ["text-with-video-extension", "truncated-mp4", "audio-only"])
def test_cli_with_opencv_prints_one_error_line_too(name, bad_files):
    # OpenCV's own FFmpeg would print e.g. "moov atom not found" unless told to keep quiet
    path, _, _ = bad_files[name]
    _assert_one_error_line(_cli("probe", str(path), "--decoder", "opencv"))


def test_cli_frames_reports_errors_the_same_way(bad_files):
    path, _, word = bad_files["audio-only"]
    _assert_one_error_line(_cli("frames", str(path), "--segments", "4"), word)


def test_unreadable_file(tmp_path, h264_video):
    path = tmp_path / "secret.mp4"
    shutil.copy(h264_video, path)
    path.chmod(0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # root reads anything; without the DAC override capabilities it obeys the mode bits
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is missing: cannot drop read permission")
        prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search",
                  "--inh-caps=-dac_override,-dac_read_search")  # fmt: skip
        check = subprocess.run([*prefix, "cat", str(path)], capture_output=True)
        if check.returncode == 0:
            pytest.skip("cannot drop root's read capability in this environment")
    else:
        with pytest.raises(UnreadableVideoError):
            open_video(path)
    code = (
        "import sys\nfrom ispan_cli.video import open_video\n"
        f"try:\n    open_video({str(path)!r})\nexcept Exception as e:\n"
        "    print(type(e).__name__)"
    )
    lib = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True)
    assert lib.stdout.strip() == "UnreadableVideoError", lib.stderr
    _assert_one_error_line(_cli("probe", str(path), prefix=prefix), "permission denied")


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_truncated_file_decodes_what_is_there_and_says_so(ext, make_video, tmp_path):
    codec = "libx264" if ext == "mkv" else "mpeg4"
    whole = make_video(f"trunc-src-{ext}", codec, ext, num_frames=60,
                       options=_x264() if ext == "mkv" else {"g": "12", "bf": "2"})  # fmt: skip
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    info = probe(cut)
    assert info.truncated is True
    assert 0 < info.num_frames < 60
    assert any("truncated" in w for w in info.warnings)
    with open_video(cut) as reader:
        times = reader.frame_times()
        frames = reader.read(range(info.num_frames))
    # every listed frame decodes, and it is the frame its timestamp says (25 fps)
    assert [read_index(f) for f in frames] == np.round(times * 25).astype(int).tolist()
    sampled = sample_video(cut, TSNSampler(8))
    assert sampled.info.truncated
    result = _cli("probe", str(cut), "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("warning: ") and "truncated" in result.stderr
    assert '"truncated": true' in result.stdout
