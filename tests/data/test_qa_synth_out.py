"""`ispan data synth` with an --out it cannot use, or nothing to write: one usage error each
(they were 'unexpected NotADirectoryError / FileNotFoundError ... this is a bug')."""

from __future__ import annotations

from pathlib import Path

import pytest

from ispan_cli.data.synth_writer import write_synthetic
from ispan_cli.errors import UsageError


def test_synth_out_a_file_or_under_one_or_nothing_to_write(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    with pytest.raises(UsageError, match="is a file; give a new folder"):
        write_synthetic(file, 1, 0)
    with pytest.raises(UsageError, match="is under a file; give a new folder"):
        write_synthetic(file / "a" / "b", 1, 0)
    with pytest.raises(UsageError, match="writes no clips"):
        write_synthetic(tmp_path / "none", 0, 0)
    assert file.read_text() == "mine" and not (tmp_path / "none").exists()
    write_synthetic(tmp_path / "new" / "deep", 1, 0)  # missing parents are made
    assert len(list((tmp_path / "new" / "deep" / "train").rglob("*.mp4"))) == 1
