"""One rule for list files: classify, data check and flow extract read the same list alike."""

from __future__ import annotations

import os

import pytest

from ispan_cli.data.check import collect_paths
from ispan_cli.inference.inputs import expand_inputs, is_list_input
from ispan_cli.video.list_files import is_list_file, list_entries

TEXT = """\
# a comment, then a blank line

Archery/v_Archery_g01_c01.avi 1
with spaces/my clip.mp4
rawframes/clip.mp4 300 5
rtsp://camera.local/stream 2
12345
"""


def test_text_lines_drop_trailing_integers_only():
    assert list(list_entries(TEXT.splitlines())) == [
        "Archery/v_Archery_g01_c01.avi",  # the official UCF101/HMDB51 lists: path label
        "with spaces/my clip.mp4",  # spaces inside a path are kept
        "rawframes/clip.mp4",  # MMAction2's: path frames label
        "rtsp://camera.local/stream",
        "12345",  # a lone number is a name, not a label
    ]


def test_csv_takes_the_first_field_and_skips_a_header():
    lines = ["path,label\n", '"a, b.mp4",jump\n', "# note\n", "c.mp4,1\n", ",\n"]
    assert list(list_entries(lines, csv_fields=True)) == ["a, b.mp4", "c.mp4"]
    # without a header the first row is an entry
    assert list(list_entries(["x.mp4,run\n"], csv_fields=True)) == ["x.mp4"]


@pytest.mark.parametrize("name", ["l.txt", "l.LST", "l.csv"])
def test_the_same_suffixes_everywhere(name):
    assert is_list_file(name) and is_list_input(name)
    assert not is_list_file("clip.mp4") and not is_list_input("clip.mp4")


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_classify_and_data_check_read_a_list_alike(tmp_path, suffix, monkeypatch):
    (tmp_path / "v").mkdir()
    for name in ("a.mp4", "b c.mp4", "d.mkv"):
        (tmp_path / "v" / name).write_bytes(b"\0")
    rows = ["v/a.mp4 1", "v/b c.mp4 2", "v", "v/missing.mp4 3"]
    if suffix == ".csv":
        rows = ["path,label", "v/a.mp4,1", '"v/b c.mp4",2', "v,0", "v/missing.mp4,3"]
    listing = tmp_path / f"list{suffix}"
    listing.write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)  # relative entries are relative to the current folder
    classify = list(dict.fromkeys(i.path for i in expand_inputs([listing.name])))
    check = collect_paths([listing.name])
    assert classify == check
    assert [os.path.normpath(p) for p in check] == [
        "v/a.mp4",
        "v/b c.mp4",
        "v/d.mkv",  # the folder entry, searched (a.mp4 and "b c.mp4" already listed)
        "v/missing.mp4",  # kept: each command reports it as missing
    ]
