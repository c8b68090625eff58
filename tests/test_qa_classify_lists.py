"""Lists of inputs as users make them: ``find -print0`` on stdin, a NUL inside a list line, and a
video whose own name starts with ``@`` (the list-file prefix)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app

VIDEO = Path(__file__).parent.parent / "samples" / "demo.mp4"


@pytest.fixture
def videos(tmp_path: Path, monkeypatch) -> Path:
    shutil.copy(VIDEO, tmp_path / "a b.mp4")
    shutil.copy(VIDEO, tmp_path / "c.mp4")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _classify(*args: str, stdin: str | None = None):
    return CliRunner().invoke(
        app, ["classify", *args, "-f", "jsonl", "--quiet", "-k", "1"], input=stdin
    )


def _records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_find_print0_on_stdin_classifies_each_name(videos):
    # find . -name '*.mp4' -print0 | ispan classify -
    result = _classify("-", stdin="./a b.mp4\0./c.mp4\0")
    assert result.exit_code == 0, result.output
    records = _records(result)
    assert [r["input"] for r in records] == ["./a b.mp4", "./c.mp4"]
    assert all(r["error"] is None for r in records)


def test_a_nul_in_a_csv_list_is_one_failed_record_and_the_job_carries_on(videos):
    (videos / "list.csv").write_text('path\nc.mp4\n"x\0y.mp4"\na b.mp4\n')
    result = _classify("list.csv")
    assert result.exit_code == 1, result.output
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    records = _records(result)
    assert [r["error"] is None for r in records] == [True, False, True]
    assert "holds a NUL byte" in records[1]["error"]


def test_a_video_named_with_the_list_prefix_says_how_to_name_it(videos):
    shutil.copy(VIDEO, videos / "@clip.mp4")
    result = _classify("@clip.mp4")  # @FILE names list file clip.mp4, which does not exist
    assert result.exit_code == 1, result.output
    (record,) = _records(result)
    assert "list file clip.mp4 does not exist" in record["error"]
    assert "to classify the video @clip.mp4 itself, give it as ./@clip.mp4" in record["error"]
    again = _classify("./@clip.mp4")
    assert again.exit_code == 0, again.output
    assert _records(again)[0]["topk"]


def test_a_video_given_as_a_list_file_is_one_error_not_lines_of_its_bytes(videos):
    result = _classify("@c.mp4")
    assert result.exit_code == 1, result.output
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    (record,) = _records(result)  # one record, not one per "line" of the MP4's bytes
    assert record["error"] == (
        "list file c.mp4 is a video, not a list of inputs; give it as c.mp4, without the @"
    )


def test_a_list_from_a_pipe_loses_no_bytes_to_the_video_check(videos):
    # ispan classify @<(find . -name '*.mp4'): the list is a pipe, read once
    os.mkfifo(videos / "list.pipe")

    def feed() -> None:
        with open(videos / "list.pipe", "w") as fh:
            fh.write("c.mp4\na b.mp4\n")

    writer = threading.Thread(target=feed)
    writer.start()
    result = _classify("@list.pipe")
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in _records(result)] == ["c.mp4", "a b.mp4"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notepad.txt", "\ufeffc.mp4\r\na b.mp4\r\n".encode()),  # UTF-8 with a BOM, CRLF
        ("excel.csv", "\ufeffpath\r\nc.mp4\r\na b.mp4\r\n".encode()),  # Excel's "CSV UTF-8"
        ("powershell.txt", "\ufeffc.mp4\r\na b.mp4\r\n".encode("utf-16-le")),  # ls > list.txt
    ],
    ids=["notepad", "excel", "powershell"],
)
def test_lists_written_on_windows_name_their_videos(videos, name, data):
    (videos / name).write_bytes(data)
    result = _classify(name)
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in _records(result)] == ["c.mp4", "a b.mp4"]


def test_a_byte_order_mark_on_stdin_is_not_part_of_the_first_path(videos):
    result = _classify("-", stdin="\ufeffc.mp4\r\n")
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in _records(result)] == ["c.mp4"]


def test_macos_metadata_files_in_a_folder_are_not_videos(videos):
    # macOS writes ._NAME beside each file it copies to exFAT/FAT drives and network shares
    (videos / "._c.mp4").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X" + bytes(4000))
    (videos / "._real.mp4").write_bytes(VIDEO.read_bytes())  # a video named so is still one
    result = _classify(str(videos))
    assert result.exit_code == 0, result.output
    names = [Path(r["input"]).name for r in _records(result)]
    assert names == ["._real.mp4", "a b.mp4", "c.mp4"]
