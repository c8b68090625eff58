"""Listing videos is never silent about what it leaves out (issue 13): an unreadable subfolder, a
symbolic link loop, a broken link, a FIFO are each one ``warning:`` line naming them; in dataset
lists a FIFO is reported once with its real reason, not twice as "missing"."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.data.generic import load_list
from ispan_cli.errors import ISpanError
from ispan_cli.video import check_video_path
from ispan_cli.video.files import videos_in

VIDEO = Path(__file__).parent.parent / "samples" / "demo.mp4"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    shutil.copy(VIDEO, root / "ok.mp4")
    shutil.copy(VIDEO, root / "sub" / "deep.mp4")
    os.symlink("b.mp4", root / "a.mp4")  # a -> b -> a
    os.symlink("a.mp4", root / "b.mp4")
    os.symlink("gone.mp4", root / "broken.mp4")
    os.mkfifo(root / "pipe.mp4")
    (root / "notes.txt").write_text("not a video name: not reported")
    return root


def test_what_a_listing_leaves_out_is_logged(tree, caplog):
    with caplog.at_level(logging.WARNING, logger="ispan.files"):
        found = videos_in(tree)
    assert found == [tree / "ok.mp4", tree / "sub" / "deep.mp4"]
    assert sorted(caplog.messages) == [
        f"skipped {tree / 'a.mp4'}: a symbolic link loop (it points back to itself)",
        f"skipped {tree / 'b.mp4'}: a symbolic link loop (it points back to itself)",
        f"skipped {tree / 'broken.mp4'}: a symbolic link to nothing (its target does not exist)",
        f"skipped {tree / 'pipe.mp4'}: not a regular file (a pipe, socket or device)",
    ]


def test_classify_of_a_folder_prints_one_warning_line_each_and_carries_on(tree):
    result = CliRunner().invoke(app, ["classify", str(tree), "-f", "jsonl", "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 4 and any("pipe.mp4: not a regular file" in w for w in warnings)
    assert len(result.stdout.splitlines()) == 2  # both real videos classified
    assert "Traceback" not in result.output and "this is a bug" not in result.output


def test_a_symlink_loop_named_on_the_command_line_is_one_error_line(tree):
    with pytest.raises(ISpanError, match="is a symbolic link loop; point the link at a video"):
        check_video_path(tree / "a.mp4")
    result = CliRunner().invoke(app, ["probe", str(tree / "a.mp4")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot read {tree / 'a.mp4'}: it is a symbolic link loop; point the link at a "
        "video"
    ]


def _deny(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unlistable: chmod where permissions bind, else (root) refuse scandir."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return
    real = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_subfolder_is_a_warning_naming_it(tree, caplog, monkeypatch):
    locked = tree / "sub"
    _deny(locked, monkeypatch)
    try:
        with caplog.at_level(logging.WARNING, logger="ispan.files"):
            found = videos_in(tree)
    finally:
        locked.chmod(0o755)
    assert found == [tree / "ok.mp4"]
    assert f"skipped folder {locked}: cannot list it (Permission denied)" in caplog.messages


def test_a_fifo_in_a_dataset_list_is_reported_once_with_its_reason(tree, tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text(
        f"{tree / 'ok.mp4'} run\n{tree / 'pipe.mp4'} run\n{tree / 'nope.mp4'} jump\n"
    )
    split = load_list(listing)
    assert split.missing == (str(tree / "nope.mp4"),)  # nothing there: missing
    assert [item.path for item in split.train] == [str(tree / "ok.mp4"), str(tree / "pipe.mp4")]
    # the per-file check names the real reason, at once (opening a FIFO would block)
    with pytest.raises(ISpanError, match="is not a regular file"):
        check_video_path(tree / "pipe.mp4")
