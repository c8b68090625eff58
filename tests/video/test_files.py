"""One list of video suffixes: every command that searches a folder takes the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ispan_cli.data.check import collect_paths
from ispan_cli.data.generic import load_folder
from ispan_cli.errors import ISpanError
from ispan_cli.export.quantize import calibration_videos
from ispan_cli.inference.inputs import expand_inputs
from ispan_cli.video.files import VIDEO_SUFFIXES, videos_in

VIDEOS = (
    "walk/a.mp4",
    "walk/b.TS",  # case-insensitive
    "walk/c.wmv",
    "walk/deeper/d.m2ts",
    "walk/e.3gp",
    "run/f.ogv",
    "run/g.MKV",
    "run/h.mts",
    "run/i.webm",
)
NOT_VIDEOS = ("walk/notes.txt", "walk/cover.jpg", "run/.cache/j.mp4", "run/k.mp4.part")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in VIDEOS + NOT_VIDEOS:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded here")
    return tmp_path


def test_the_list_has_what_people_keep_video_in():
    for suffix in (".ts", ".wmv", ".m2ts", ".mts", ".3gp", ".ogv", ".flv", ".mov", ".avi"):
        assert suffix in VIDEO_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in VIDEO_SUFFIXES)
    assert len(set(VIDEO_SUFFIXES)) == len(VIDEO_SUFFIXES)


def test_classify_train_data_check_and_calibration_take_the_same_files(folder: Path):
    expected = sorted(str(folder / name) for name in VIDEOS)
    classify = sorted(item.path for item in expand_inputs([str(folder)]))
    check = sorted(collect_paths([str(folder)]))
    calibration = sorted(str(p) for p in calibration_videos(folder))
    data = load_folder(folder, val_fraction=0.5)
    train = sorted(item.path for item in (*data.train, *data.test))
    assert classify == check == calibration == train == expected
    assert [str(p) for p in videos_in(folder)] == sorted(expected, key=Path)


def test_a_folder_without_videos_names_the_suffixes(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("no videos here")
    with pytest.raises(ISpanError, match=r"\.wmv"):
        calibration_videos(tmp_path)
    (item,) = expand_inputs([str(tmp_path)])
    assert item.error and ".m2ts" in item.error
