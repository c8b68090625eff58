"""`ispan data check` and the per-file check behind it: real encoded, truncated and fake videos,
each reported with its own reason; the cache; files that only need another decoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ispan_cli.data.check import CheckCache, check_video, check_videos, collect_paths
from tests.data.trees import ucf_tree
from tests.video.videogen import write_pattern_video

ISPAN = str(Path(sys.executable).with_name("ispan"))


def _ispan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "250"}  # one table row per file
    env.pop("ISPAN_DEBUG", None)
    return subprocess.run(
        [ISPAN, *args], capture_output=True, text=True, timeout=180, env=env, cwd=cwd
    )


def _video(path: Path, frames: int = 24, codec: str = "libx264") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"preset": "veryfast", "g": "12", "bf": "2"} if codec == "libx264" else {}
    return write_pattern_video(path, codec, frames, width=64, height=48, options=options)


def _mixed(folder: Path) -> dict[str, str | None]:
    """A folder of good, truncated and fake videos: file name -> the reason it must get."""
    good = _video(folder / "good.mp4")
    _video(folder / "sub" / "good2.avi", codec="mpeg4")
    cut = folder / "cut.mp4"  # half an MP4 whose index (moov) was at the end: lost
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "page.mp4").write_text("<html><body>404 Not Found</body></html>\n" * 20)
    (folder / "empty.avi").write_bytes(b"")
    _video(folder / "short.mp4", frames=2)
    (folder / "notes.txt").write_text("not a video suffix: not scanned in a folder\n")
    return {
        "good.mp4": None,
        "good2.avi": None,
        "cut.mp4": "truncated",
        "page.mp4": "not_a_video",
        "empty.avi": "truncated",
        "short.mp4": "too_short",
    }


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("mixed")
    return folder, _mixed(folder)


def test_each_file_gets_its_reason(mixed) -> None:
    folder, expected = mixed
    paths = collect_paths([str(folder), str(folder / "gone.mp4")])
    assert sorted(Path(p).name for p in paths) == sorted([*expected, "gone.mp4"])
    got = {Path(r.path).name: r for r in check_videos(paths, 4, workers=0).results}
    assert {name: r.reason for name, r in got.items()} == {**expected, "gone.mp4": "missing"}
    assert got["good.mp4"].frames == 24 and got["good.mp4"].message == ""
    assert "0 bytes" in got["empty.avi"].message
    assert "2 frame(s)" in got["short.mp4"].message and "K=4" in got["short.mp4"].message
    # K counts: the two-frame file is fine for K=2
    assert check_video(folder / "short.mp4", 2).ok


def test_data_check_cli_on_a_mixed_folder(mixed, tmp_path: Path) -> None:
    folder, expected = mixed
    bad = tmp_path / "bad.txt"
    done = _ispan("data", "check", str(folder), "--segments", "4", "--workers", "2",
                  "--format", "json", "--out", str(bad))  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    failing = {name: why for name, why in expected.items() if why}
    assert doc["files"] == len(expected) and doc["ok"] == 2 and doc["failed"] == len(failing)
    assert doc["by_reason"] == {"not_a_video": 1, "truncated": 2, "too_short": 1}
    assert {Path(f["path"]).name: f["reason"] for f in doc["failures"]} == failing
    assert sorted(Path(p).name for p in bad.read_text().splitlines()) == sorted(failing)
    assert doc["workers"] == 2 and doc["segments"] == 4

    table = _ispan("data", "check", str(folder), "--segments", "4", "--workers", "0")
    assert table.returncode == 1 and "Traceback" not in table.stderr
    for name in failing:
        assert name in table.stdout
    assert "not a video" in table.stdout and "too short" in table.stdout
    assert "6 videos checked" in table.stdout and "2 ok, 4 failed" in table.stdout

    clean = _ispan("data", "check", str(folder / "good.mp4"), str(folder / "sub"), "-s", "4")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "2 videos checked" in clean.stdout and "failed" not in clean.stdout


def test_data_check_cli_on_a_dataset_layout_and_a_list(tmp_path: Path) -> None:
    root = ucf_tree(tmp_path / "ucf")  # 6-frame clips: too short for K=8, fine for K=4
    videos = sorted((root / "UCF-101").rglob("*.avi"))
    videos[0].unlink()  # listed, missing
    videos[1].write_bytes(videos[1].read_bytes()[:300])  # cut to the header
    done = _ispan("data", "check", "--dataset", "ucf101", "--data-root", str(root),
                  "--split", "2", "--segments", "4", "--format", "json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    reasons = {Path(f["path"]).name: f["reason"] for f in doc["failures"]}
    assert reasons == {videos[0].name: "missing", videos[1].name: "truncated"}
    assert doc["files"] == len(videos)  # train and test of the split, missing included

    listing = tmp_path / "lists" / "videos.txt"  # entries relative to the current folder
    listing.parent.mkdir()
    listing.write_text(f"# path label\n{videos[2].relative_to(tmp_path)} 0\nnope.avi 1\n")
    done = _ispan("data", "check", "lists/videos.txt", "-s", "4", "-f", "json", cwd=tmp_path)
    doc = json.loads(done.stdout)
    assert done.returncode == 1 and doc["files"] == 2
    assert [(Path(f["path"]).name, f["reason"]) for f in doc["failures"]] == [
        ("nope.avi", "missing")
    ]


def test_cache_skips_unchanged_files_and_rechecks_changed_ones(mixed, tmp_path: Path) -> None:
    folder, _ = mixed
    work = tmp_path / "v"
    work.mkdir()
    good, fake = work / "good.mp4", work / "fake.mp4"
    good.write_bytes((folder / "good.mp4").read_bytes())
    fake.write_bytes((folder / "page.mp4").read_bytes())
    cache = tmp_path / "cache.jsonl"
    paths = [str(good), str(fake)]
    first = check_videos(paths, 4, cache=cache)
    assert first.cached == 0 and [r.reason for r in first.results] == [None, "not_a_video"]
    assert len(cache.read_text().splitlines()) == 2
    mtime = cache.stat().st_mtime_ns

    again = check_videos(paths, 4, cache=cache)
    assert again.cached == 2 and again.results == first.results
    assert cache.stat().st_mtime_ns == mtime  # nothing new: not rewritten

    # a changed file is checked again; another K or decoder is another question
    fake.write_bytes(good.read_bytes())
    os.utime(fake, ns=(mtime, mtime + 10**9))
    fixed = check_videos(paths, 4, cache=cache)
    assert fixed.cached == 1 and [r.reason for r in fixed.results] == [None, None]
    assert check_videos(paths, 4, "opencv", cache=cache).cached == 0
    assert check_videos(paths, 3, cache=cache).cached == 0

    # a damaged cache file is ignored, never fatal
    cache.write_text("{not json\n" + cache.read_text())
    assert check_videos(paths, 3, cache=cache).cached == 2
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left


def test_a_file_pyav_cannot_read_but_opencv_can(mixed, monkeypatch) -> None:
    folder, _ = mixed
    import ispan_cli.video.pyav_backend as pyav_backend
    from ispan_cli.video.errors import VideoDecodeError

    class Failing:
        def __init__(self, path, *args, **kwargs):
            raise VideoDecodeError(f"cannot decode {path} (mpeg4): this FFmpeg build cannot")

    monkeypatch.setattr(pyav_backend, "PyAVReader", Failing)
    result = check_video(folder / "good.mp4", 4)
    assert result.reason == "needs_opencv" and result.frames == 24
    assert "--decoder opencv" in result.message and "this FFmpeg build cannot" in result.message
    assert check_video(folder / "good.mp4", 4, "opencv").ok
    # a damaged file stays damaged: OpenCV cannot read it either, so PyAV's reason stands
    for name in ("page.mp4", "cut.mp4"):
        result = check_video(folder / name, 4)
        assert result.reason == "decode_error" and "this FFmpeg build" in result.message


def test_cache_keys_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    path.write_bytes(b"x" * 10)
    key = CheckCache.key(str(path), 8, "auto")
    assert key is not None and key["path"] == str(path.resolve()) and key["size"] == 10
    assert CheckCache.key(str(tmp_path / "gone.mp4"), 8, "auto") is None
