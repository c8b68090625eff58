"""Dataset layouts as researchers get them wrong: a class folder in another case, --data-root one
level too low, a folder dataset with train/ and no val/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ispan_cli.data import load_dataset
from ispan_cli.errors import ISpanError
from tests.data.trees import HMDB_CLASSES, hmdb_tree, tiny_video, ucf_tree


def test_ucf_class_folder_in_another_case_says_rename(tmp_path: Path) -> None:
    root = ucf_tree(tmp_path / "ucf", groups=2, clips=1)
    (root / "UCF-101" / "Biking").rename(root / "UCF-101" / "biking")
    with pytest.raises(ISpanError, match=r"UCF-101/biking differs in case .*rename it to Biking$"):
        load_dataset("ucf101", str(root), 1)


def test_hmdb_class_folder_in_another_case_says_rename(tmp_path: Path) -> None:
    root = hmdb_tree(tmp_path / "hmdb", videos=3)
    (root / "wave").rename(root / "Wave")
    with pytest.raises(ISpanError, match=r"hmdb/Wave differs in case .*rename it to wave$"):
        load_dataset("hmdb51", str(root), 1)


def test_hmdb_root_one_level_too_low_names_the_mistake(tmp_path: Path) -> None:
    """A class folder as --data-root: the split files beside it were found, and every video
    was reported missing ("fix or remove them")."""
    root = hmdb_tree(tmp_path / "hmdb", videos=3)
    with pytest.raises(ISpanError, match=r"holds none of the class folders .*should be the folder"):
        load_dataset("hmdb51", str(root / HMDB_CLASSES[0]), 1)


def test_a_missing_class_folder_is_still_only_missing_videos(tmp_path: Path) -> None:
    """No case twin, other classes there: counted as missing (the --max-skipped budget)."""
    root = ucf_tree(tmp_path / "ucf", groups=2, clips=1)
    shutil.rmtree(root / "UCF-101" / "Biking")
    data = load_dataset("ucf101", str(root), 1)
    assert len(data.missing) == 2 and all("/Biking/" in p for p in data.missing)


def test_folder_with_train_and_no_val_is_split_by_hash_not_one_class(tmp_path: Path) -> None:
    """`ispan data synth --val 0` writes train/<class>/ alone: its classes were ("train",)."""
    root = tmp_path / "data"
    for c, cls in enumerate(("jump", "run", "walk")):
        for v in range(4):
            tiny_video(root / "train" / cls / f"{cls}{v}.mp4", 10 * c + v, frames=2, size=16)
    data = load_dataset("folder", str(root), 1)
    assert data.classes == ("jump", "run", "walk")
    assert len(data.train) + len(data.test) == 12
    assert {data.classes[v.label] for v in data.train} == {"jump", "run", "walk"}


def test_root_one_level_too_high_names_the_folder_to_use(tmp_path: Path) -> None:
    ucf_tree(tmp_path / "ucf", groups=2, clips=1)
    hmdb_tree(tmp_path / "hmdb", videos=3)
    ucf = re.escape(str(tmp_path / "ucf"))
    with pytest.raises(ISpanError, match=f"; {ucf} holds it: use --data-root {ucf}$"):
        load_dataset("ucf101", str(tmp_path), 1)
    hmdb = re.escape(str(tmp_path / "hmdb"))
    with pytest.raises(ISpanError, match=f"; {hmdb} holds it: use --data-root {hmdb}$"):
        load_dataset("hmdb51", str(tmp_path), 1)
