"""Untrusted text never drives the terminal: file names and labels holding escape sequences, rich
markup and newlines are shown, not obeyed, in every human-readable output; JSON stays exact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ispan_cli.terminal import markup, one_line, visible
from ispan_cli.zoo import zoo_dir
from tests.video.videogen import write_pattern_video

ISPAN = str(Path(sys.executable).with_name("ispan"))
# clear screen, set the window title, a hidden hyperlink, fake styling, a right-to-left override
# (labels can also hold `/`: `[/]` alone crashed rich tables; file names cannot)
NAME = "a\x1b[2J\x1b]0;pwned\x07[bold red]CRITICAL[link=evil.example]y\u202egnp"
HOSTILE = NAME + "[/link][/]"


def _ispan(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400"}  # wide enough that rich does not wrap a name
    return subprocess.run([ISPAN, *args], capture_output=True, text=True, timeout=120, env=env)


def _assert_inert(output: str) -> None:
    """No raw control character reached the output, and the markup came out as text."""
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "\\x1b" in output


def test_visible_shows_every_control_character():
    assert (
        visible("a\nb\tc\x1b[31m\x07\x9b\u202e\u200b")
        == "a\\nb\\tc\\x1b[31m\\x07\\x9b\\u202e\\u200b"
    )
    assert visible("plain ünïcode name.mp4") == "plain ünïcode name.mp4"
    assert visible("x" * 10, limit=5) == "xxxx…"
    assert one_line("first\nerror: forged") == "first error: forged"
    assert markup("[bold]x[/]") == "\\[bold]x\\[/]"


@pytest.fixture(scope="module")
def hostile_video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("names")
    path = folder / f"{NAME}.mp4"
    return write_pattern_video(path, "libx264", 20, width=96, height=72)


def test_probe_and_frames_show_the_name_inert(hostile_video):
    for args in (["probe", str(hostile_video)], ["frames", str(hostile_video), "-s", "2"]):
        done = _ispan(*args)
        assert done.returncode == 0, done.stderr
        _assert_inert(done.stdout + done.stderr)
        assert "[boldred]CRITICAL" in "".join(done.stdout.split())  # shown, not applied
    doc = json.loads(_ispan("probe", str(hostile_video), "--format", "json").stdout)
    assert doc["path"] == str(hostile_video)  # machines get the exact name


def test_classify_table_keeps_every_result_and_json_is_exact(hostile_video, tmp_path):
    other = write_pattern_video(tmp_path / "plain.mp4", "libx264", 20, width=96, height=72)
    done = _ispan("classify", str(hostile_video), str(other), "--format", "table")
    assert done.returncode == 0, done.stderr
    _assert_inert(done.stdout + done.stderr)
    assert "plain.mp4" in done.stdout and "CRITICAL" in done.stdout  # `[/]` crashed the table
    records = [json.loads(x) for x in _ispan("classify", str(hostile_video), "-f", "jsonl", "-q")
               .stdout.splitlines()]  # fmt: skip
    assert records[0]["input"] == str(hostile_video)


def test_a_newline_in_a_name_cannot_forge_an_error_line(tmp_path):
    done = _ispan("probe", str(tmp_path / "missing\nerror: everything is fine\x1b[2J.mp4"))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    _assert_inert(done.stderr)


def test_hostile_labels_in_a_model_folder_are_shown_inert(hostile_video, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(zoo_dir() / "istpan-tiny-placeholder", model)
    doc = json.loads((model / "config.json").read_text())
    doc["model"]["labels"] = [f"{HOSTILE}{i}" for i in range(len(doc["model"]["labels"]))]
    (model / "config.json").write_text(json.dumps(doc))
    for args in (["classify", str(hostile_video), "--model", str(model), "-f", "table"],
                 ["models", "info", str(model)],
                 ["visualize", str(hostile_video), "--model", str(model), "-o",
                  str(tmp_path / "v.mp4")]):  # fmt: skip
        done = _ispan(*args)
        assert done.returncode == 0, (args, done.stderr)
        _assert_inert(done.stdout + done.stderr)
        assert "CRITICAL" in done.stdout


def test_data_check_table_shows_names_inert(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / f"{NAME}.mp4").write_text("not a video")
    done = _ispan("data", "check", str(folder), "--segments", "2", "--workers", "0")
    assert done.returncode == 1
    _assert_inert(done.stdout + done.stderr)
    assert "CRITICAL" in done.stdout
