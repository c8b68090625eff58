"""`data check` and `flow extract` read list files as `classify` does (video.list_files.open_list):
a UTF-16 list (PowerShell's `ls > list.txt`) used to break into one entry per character, and a
name that is not UTF-8 lost its bytes to U+FFFD."""

from __future__ import annotations

import os

import pytest

from ispan_cli.data.check import collect_paths


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-8"])
def test_list_files_in_the_encodings_windows_tools_write(tmp_path, encoding):
    videos = [tmp_path / "a clip.mp4", tmp_path / "b.avi"]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{v}\r\n" for v in videos), encoding=encoding)
    assert collect_paths([str(listing)]) == [str(v) for v in videos]


def test_a_name_that_is_not_utf8_keeps_its_bytes(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.mp4"  # latin-1, as an old Windows tool names it
    listing = tmp_path / "list.txt"
    listing.write_bytes(name + b"\n")
    (path,) = collect_paths([str(listing)])
    assert os.fsencode(path) == name
