"""The ``folder`` and ``list`` datasets: one sub-folder per class, or "path label" list files
(plain text, CSV, or a Kinetics annotation CSV)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from ispan_cli.data.items import DatasetSplit, VideoItem, listed
from ispan_cli.errors import ISpanError
from ispan_cli.video.files import suffix_list, videos_in

TRAIN_NAMES = ("train",)
TEST_NAMES = ("val", "test", "validate")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def load_folder(root: str | Path, val_fraction: float = 0.2) -> DatasetSplit:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``test/``); without those, one
    ``root/<class>/*`` tree split by a stable hash of each file name (``val_fraction`` to test)."""
    root = _folder(root)
    train_dir = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    test_dir = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None)
    if test_dir is not None:
        # with only val/ (e.g. `ispan data synth --train 0`) the folder is a test set
        classes = _class_dirs(train_dir) if train_dir is not None else _class_dirs(test_dir)
        extra = sorted(set(_class_dirs(test_dir)) - set(classes))
        if extra:
            raise ISpanError(f"{test_dir} has classes {extra} that {train_dir} lacks")
        train = _scan(train_dir, classes) if train_dir is not None else ()
        test = _scan(test_dir, classes)
        protocol = f"folder {root.name}: {test_dir.name}/ for testing"
        if train_dir is not None:
            protocol = (
                f"folder {root.name}: {train_dir.name}/ for training, {test_dir.name}/ for testing"
            )
    else:
        # train/ alone (e.g. `ispan data synth --val 0`) is the class tree: without this its
        # one sub-folder "train" became the only class, and every video learned it
        tree = train_dir if train_dir is not None else root
        classes = _class_dirs(tree)
        every = _scan(tree, classes)
        test = tuple(v for v in every if _hashed(v.path, tree) < val_fraction)
        train = tuple(v for v in every if _hashed(v.path, tree) >= val_fraction)
        where = f"{root.name}/{tree.name}" if tree != root else root.name
        protocol = f"folder {where}: {val_fraction:.0%} of files held out by a hash of the name"
    if not train and not test:
        raise ISpanError(f"{root} holds no videos ({suffix_list()})")
    return DatasetSplit("folder", 1, classes, train, test, (), protocol)


def load_list(root: str | Path) -> DatasetSplit:
    """A list file, or a folder holding ``train.{txt,csv}`` and ``val``/``test`` lists.

    Lines are "path label" (space, tab or comma separated; label a class name or a 0-based
    index), paths relative to the list file's folder. A CSV with the Kinetics columns
    (label, youtube_id, time_start, time_end[, split]) finds ``<youtube_id>_<start>_<end>.mp4``
    (start/end zero-padded to 6 digits) under ``<split>/<label>/``, ``<label>/``, ``<split>/``
    or the folder itself.
    """
    root = Path(root)
    if root.is_file():
        rows = _read_rows(root)
        has_split = any(split for *_, split in rows)
        train_rows = [r for r in rows if not has_split or r[3] in TRAIN_NAMES]
        test_rows = [r for r in rows if has_split and r[3] in TEST_NAMES]
        base = root.parent
    else:
        root = _folder(root)
        train_file = _first(root, TRAIN_NAMES)
        test_file = _first(root, TEST_NAMES)
        if train_file is None:
            raise ISpanError(f'{root} has no train.txt or train.csv list ("path label" lines)')
        train_rows = _read_rows(train_file)
        test_rows = _read_rows(test_file) if test_file else []
        base = root
    labels = [r[1] for r in train_rows + test_rows]
    if all(lab.isdigit() for lab in labels):
        count = max(int(lab) for lab in labels) + 1
        classes = _classes_file(base, count) or tuple(f"class-{i}" for i in range(count))
        index = {str(i): i for i in range(count)}
    else:
        classes = tuple(sorted(set(labels)))
        index = {name: i for i, name in enumerate(classes)}
    missing: list[str] = []

    def items(rows) -> tuple[VideoItem, ...]:
        out = []
        for ref, label, kinetics, split in rows:
            path = _kinetics_path(base, ref, label, split) if kinetics else base / ref
            if path is None or not listed(path):
                missing.append(str(path or base / ref))
                continue
            out.append(VideoItem(str(path), index[label]))
        return tuple(out)

    return DatasetSplit(
        "list",
        1,
        classes,
        items(train_rows),
        items(test_rows),
        tuple(missing),
        f"list {root.name}",
    )


def _read_rows(path: Path) -> list[tuple[str, str, bool, str]]:
    """(path or youtube-id stem, label, is_kinetics, split) per line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ISpanError(f'{path} is empty; expected "path label" lines')
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    if all(c in header for c in KINETICS_COLUMNS):
        rows = []
        for rec in csv.DictReader(lines, fieldnames=header):
            if rec is None or rec.get("label", "").strip().lower() == "label":
                continue
            stem = (
                f"{rec['youtube_id'].strip()}_{int(float(rec['time_start'])):06d}_"
                f"{int(float(rec['time_end'])):06d}"
            )
            rows.append((stem, rec["label"].strip(), True, rec.get("split", "").strip()))
        return rows
    rows = []
    for n, line in enumerate(lines, 1):
        parts = next(csv.reader([line])) if "," in line else line.split()
        parts = [p.strip() for p in parts if p.strip()]
        if len(parts) < 2:
            raise ISpanError(f'{path}:{n}: {line!r} is not "path label"')
        rows.append((parts[0], parts[1], False, ""))
    return rows


def _kinetics_path(base: Path, stem: str, label: str, split: str) -> Path | None:
    for folder in (base / split / label, base / label, base / split, base):
        for suffix in (".mp4", ".mkv", ".webm", ".avi"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def _classes_file(base: Path, count: int) -> tuple[str, ...] | None:
    path = base / "classes.txt"
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != count:
        raise ISpanError(f"{path} names {len(names)} classes but the lists use {count}")
    return names


def _first(root: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in (".txt", ".csv"):
            if (root / f"{stem}{suffix}").is_file():
                return root / f"{stem}{suffix}"
    return None


def _folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ISpanError(f"--data-root {root} does not exist or is not a folder")
    return root


def _class_dirs(root: Path) -> tuple[str, ...]:
    classes = tuple(
        sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if not classes:
        raise ISpanError(f"{root} has no class sub-folders; expected {root}/<class>/<video>")
    return classes


def _scan(root: Path, classes: tuple[str, ...]) -> tuple[VideoItem, ...]:
    out = []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            continue
        out.extend(VideoItem(str(path), label) for path in videos_in(folder))
    return tuple(out)


def _hashed(path: str, root: Path) -> float:
    rel = str(Path(path).relative_to(root))
    return int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
