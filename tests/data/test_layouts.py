"""The official layouts: the right videos per split, groups never straddle, labels from
classInd.txt, missing files counted, layout errors that say what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ispan_cli.data import load_dataset
from ispan_cli.errors import ISpanError
from tests.data.trees import HMDB_CLASSES, UCF_CLASSES, hmdb_tree, ucf_tree


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> Path:
    return ucf_tree(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory) -> Path:
    return hmdb_tree(tmp_path_factory.mktemp("hmdb") / "hmdb51")


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_splits(ucf: Path, split: int) -> None:
    data = load_dataset("ucf101", str(ucf), split)
    assert data.classes == UCF_CLASSES
    assert {v.group for v in data.test} == {f"{split:02d}"}
    assert not {v.group for v in data.train} & {v.group for v in data.test}
    assert len(data.train) == 3 * 2 * 2 and len(data.test) == 3 * 2
    for v in data.train + data.test:
        # the label is the classInd index of the class folder (0-based), never a sorted order
        assert UCF_CLASSES[v.label] == Path(v.path).parent.name
        assert Path(v.path).is_file()
    assert not data.missing


def test_ucf101_root_variants_and_missing_files(ucf: Path, tmp_path: Path) -> None:
    # the UCF-101 folder itself works as --data-root (lists beside it)
    assert len(load_dataset("ucf101", str(ucf / "UCF-101"), 1).test) == 6
    # a listed but absent video is counted, not fatal
    victim = ucf / "UCF-101" / "Biking" / "v_Biking_g01_c02.avi"
    moved = tmp_path / victim.name
    victim.rename(moved)
    try:
        data = load_dataset("ucf101", str(ucf), 1)
        assert data.missing == (str(victim),)
        assert len(data.test) == 5
    finally:
        moved.rename(victim)


def test_ucf101_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ISpanError, match=r"UCF-101/<Class>/\*\.avi"):
        load_dataset("ucf101", str(tmp_path), 1)
    (tmp_path / "UCF-101").mkdir()
    (tmp_path / "ucfTrainTestlist").mkdir()
    with pytest.raises(ISpanError, match=r"missing .*classInd\.txt"):
        load_dataset("ucf101", str(tmp_path), 1)
    (tmp_path / "ucfTrainTestlist" / "classInd.txt").write_text("1 A\n")
    with pytest.raises(ISpanError, match=r"missing .*trainlist02\.txt"):
        load_dataset("ucf101", str(tmp_path), 2)
    with pytest.raises(ISpanError, match="splits are 1, 2 and 3"):
        load_dataset("ucf101", str(tmp_path), 4)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_splits(hmdb: Path, split: int) -> None:
    data = load_dataset("hmdb51", str(hmdb), split)
    assert data.classes == HMDB_CLASSES
    assert len(data.test) == 3 and len(data.train) == 3 * 2
    test_names = {Path(v.path).name for v in data.test}
    assert all(f"_clip_{split - 1}_" in n for n in test_names)
    assert not any("_clip_3_" in Path(v.path).name for v in data.train + data.test)  # flag 0
    assert not test_names & {Path(v.path).name for v in data.train}
    for v in data.train + data.test:
        assert HMDB_CLASSES[v.label] == Path(v.path).parent.name


def test_hmdb51_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ISpanError, match="testTrainMulti_7030_splits"):
        load_dataset("hmdb51", str(tmp_path), 1)
    lists = tmp_path / "testTrainMulti_7030_splits"
    lists.mkdir()
    (lists / "wave_test_split1.txt").write_text("a.avi 7\n")
    with pytest.raises(ISpanError, match=re.escape("is not '<video>.avi <0|1|2>'")):
        load_dataset("hmdb51", str(tmp_path), 1)


def test_list_and_kinetics_csv(tmp_path: Path) -> None:
    from tests.data.trees import tiny_video

    for split, label, yid in (("train", "abseiling", "aaa"), ("train", "zumba", "bbb"),
                              ("val", "zumba", "ccc")):  # fmt: skip
        tiny_video(tmp_path / split / label / f"{yid}_000010_000020.mp4", hash(yid) % 100)
    (tmp_path / "k.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,aaa,10,20,train\nzumba,bbb,10,20,train\nzumba,ccc,10,20,val\n"
        "zumba,gone,0,10,val\n"
    )
    data = load_dataset("list", str(tmp_path / "k.csv"))
    assert data.classes == ("abseiling", "zumba")
    assert [Path(v.path).name[:3] for v in data.train] == ["aaa", "bbb"]
    assert [(Path(v.path).name[:3], v.label) for v in data.test] == [("ccc", 1)]
    assert len(data.missing) == 1 and "gone" in data.missing[0]
    # plain "path label" lists in a folder
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("../train/zumba/bbb_000010_000020.mp4 1\n"
                                     "../train/abseiling/aaa_000010_000020.mp4 0\n")  # fmt: skip
    (lists / "val.txt").write_text("../val/zumba/ccc_000010_000020.mp4 1\n")
    data = load_dataset("list", str(lists))
    assert data.classes == ("class-0", "class-1")
    assert [v.label for v in data.train] == [1, 0] and len(data.test) == 1


def test_folder_with_and_without_val(tmp_path: Path) -> None:
    from tests.data.trees import tiny_video

    for i in range(10):
        tiny_video(tmp_path / "flat" / ("a" if i % 2 else "b") / f"{i}.mp4", i)
    data = load_dataset("folder", str(tmp_path / "flat"))
    assert data.classes == ("a", "b")
    assert len(data.train) + len(data.test) == 10
    again = load_dataset("folder", str(tmp_path / "flat"))
    assert again.test == data.test  # the held-out part is stable
    with pytest.raises(ISpanError, match="no class sub-folders"):
        load_dataset("folder", str(tmp_path / "flat" / "a"))
