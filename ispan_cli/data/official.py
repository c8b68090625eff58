"""The official UCF101 and HMDB51 layouts and their three train/test splits."""

from __future__ import annotations

import re
from pathlib import Path

from ispan_cli.data.items import DatasetSplit, VideoItem, listed
from ispan_cli.errors import ISpanError

SPLITS = (1, 2, 3)
UCF_LISTS = "ucfTrainTestlist"
UCF_VIDEOS = "UCF-101"
HMDB_LISTS = "testTrainMulti_7030_splits"
_UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def load_ucf101(root: str | Path, split: int) -> DatasetSplit:
    """``root`` holds ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and ``ucfTrainTestlist/``.

    ``root`` may also be the ``UCF-101`` folder itself with ``ucfTrainTestlist`` beside or inside.
    Labels follow ``classInd.txt`` (1-based there, 0-based here).
    """
    _check_split(split)
    root = Path(root)
    videos, lists = _find_ucf(root)
    class_ind = lists / "classInd.txt"
    classes = _read_class_ind(class_ind)
    by_name = {name.lower(): i for i, name in enumerate(classes)}
    missing: list[str] = []

    def item(rel: str, line: str, where: Path) -> VideoItem:
        cls = rel.split("/")[0]
        if cls.lower() not in by_name:
            raise ISpanError(
                f"{where}: {line!r} names class folder {cls!r}, which is not in {class_ind}"
            )
        match = _UCF_GROUP.search(rel)
        return VideoItem(str(videos / rel), by_name[cls.lower()], match.group(1) if match else None)

    subsets = {}
    for subset, stem in (("train", "trainlist"), ("test", "testlist")):
        path = lists / f"{stem}0{split}.txt"
        items = []
        for line in _lines(path, f"the official UCF101 split file ({UCF_LISTS}/{path.name})"):
            rel = line.split()[0].replace("\\", "/")
            entry = item(rel, line, path)
            if listed(entry.path):
                items.append(entry)
            else:
                missing.append(entry.path)
        subsets[subset] = tuple(items)
    if missing:
        _check_class_folders(videos, {Path(p).parent.name for p in missing}, lists)
    return DatasetSplit(
        "ucf101",
        split,
        classes,
        subsets["train"],
        subsets["test"],
        tuple(missing),
        f"UCF101 split {split}: trainlist0{split}.txt / testlist0{split}.txt",
    )


def load_hmdb51(root: str | Path, split: int) -> DatasetSplit:
    """``root`` holds ``<class>/<video>.avi`` and ``testTrainMulti_7030_splits/`` (inside or
    beside it): ``<class>_test_split<N>.txt`` lines "<video>.avi <flag>", 1 train, 2 test,
    0 unused. Classes are the split files' class names, sorted."""
    _check_split(split)
    root = Path(root)
    if not root.is_dir():
        raise ISpanError(f"--data-root {root} does not exist or is not a folder")
    lists = next((p for p in (root / HMDB_LISTS, root.parent / HMDB_LISTS) if p.is_dir()), None)
    if lists is None:
        raise ISpanError(
            f"no {HMDB_LISTS}/ in {root} or beside it; HMDB51 needs the official split files "
            f"(testTrainMulti_7030_splits.rar), unpacked there{_one_level_down(root, HMDB_LISTS)}"
        )
    suffix = f"_test_split{split}.txt"
    files = sorted(lists.glob(f"*{suffix}"))
    if not files:
        raise ISpanError(f"{lists} has no *{suffix} files; expected one per class")
    classes = tuple(f.name[: -len(suffix)] for f in files)
    train, test, missing = [], [], []
    for label, (cls, path) in enumerate(zip(classes, files, strict=True)):
        for line in _lines(path, "an HMDB51 split file"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ISpanError(f"{path}: {line!r} is not '<video>.avi <0|1|2>'")
            if parts[1] == "0":
                continue
            video = root / cls / parts[0]
            if not listed(video):
                missing.append(str(video))
                continue
            (train if parts[1] == "1" else test).append(VideoItem(str(video), label))
    if missing:
        _check_class_folders(root, {Path(p).parent.name for p in missing}, lists)
    return DatasetSplit(
        "hmdb51",
        split,
        classes,
        tuple(train),
        tuple(test),
        tuple(missing),
        f"HMDB51 split {split}: flag 1 train / flag 2 test in {HMDB_LISTS}/*{suffix}",
    )


def _find_ucf(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise ISpanError(f"--data-root {root} does not exist or is not a folder")
    candidates = [
        (root / UCF_VIDEOS, root / UCF_LISTS),
        (root, root / UCF_LISTS),
        (root, root.parent / UCF_LISTS),
    ]
    for videos, lists in candidates:
        if videos.is_dir() and lists.is_dir():
            return videos, lists
    raise ISpanError(
        f"{root} is not in the UCF101 layout: expected {root / UCF_VIDEOS}/<Class>/*.avi and "
        f"{root / UCF_LISTS}/ (classInd.txt, trainlist0N.txt, testlist0N.txt)"
        f"{_one_level_down(root, UCF_LISTS)}"
    )


def _one_level_down(root: Path, lists: str) -> str:
    """The hint for a --data-root one level too high: the sub-folders that hold ``lists``."""
    try:
        below = sorted(p for p in root.iterdir() if (p / lists).is_dir())
    except OSError:
        return ""
    if not below:
        return ""
    if len(below) == 1:
        return f"; {below[0]} holds it: use --data-root {below[0]}"
    shown = ", ".join(str(p) for p in below[:5])
    return f"; these sub-folders hold it: {shown} (give one as --data-root)"


def _check_class_folders(videos: Path, classes: set[str], lists: Path) -> None:
    """Listed videos of ``classes`` were missing: when whole class folders are, say why in one
    line instead of counting each of their videos as missing. A folder whose name differs only
    in case from the split files' (``biking`` for ``Biking``) is to be renamed; none of the
    class folders there at all means --data-root is not the folder that holds them."""
    absent = sorted(c for c in classes if not (videos / c).is_dir())
    if not absent:
        return
    present = {p.name.lower(): p.name for p in videos.iterdir() if p.is_dir()}
    for cls in absent:
        other = present.get(cls.lower())
        if other is not None:
            raise ISpanError(
                f"{videos / other} differs in case from the class folder {cls!r} that the split "
                f"files in {lists} name; rename it to {cls}"
            )
    if not any(p.is_dir() and p.name != lists.name for p in videos.iterdir()):
        raise ISpanError(
            f"{videos} holds none of the class folders that the split files in {lists} name "
            f"(such as {absent[0]}/); --data-root should be the folder that holds them"
        )


def _read_class_ind(path: Path) -> tuple[str, ...]:
    rows = []
    for line in _lines(path, "the UCF101 class index (classInd.txt: '1 ApplyEyeMakeup')"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ISpanError(f"{path}: {line!r} is not '<index> <ClassName>'")
        rows.append((int(parts[0]), parts[1]))
    rows.sort()
    if [i for i, _ in rows] != list(range(1, len(rows) + 1)):
        raise ISpanError(f"{path}: class indices must run 1..{len(rows)} without gaps")
    return tuple(name for _, name in rows)


def _lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise ISpanError(f"missing {path}: expected {what}")
    text = path.read_text(encoding="utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _check_split(split: int) -> None:
    if split not in SPLITS:
        raise ISpanError(f"--split {split}: the official splits are 1, 2 and 3")
