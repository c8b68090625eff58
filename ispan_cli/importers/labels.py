"""The class-name lists of the public action datasets, shipped as package data, and label files.

Each list is in the order the peers' classifiers use: Kinetics-400 as MMAction2's
``tools/data/kinetics/label_map_k400.txt`` (alphabetical), UCF101 as the official
``classInd.txt`` (1 ApplyEyeMakeup ... 101 YoYo), HMDB51 alphabetical by folder name, as MMAction2
builds its HMDB51 file lists. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from ispan_cli.errors import ISpanError

_FOLDER = Path(__file__).resolve().parent / "labels"
LABEL_SETS = {"kinetics400": 400, "ucf101": 101, "hmdb51": 51}


def label_set(name: str) -> tuple[str, ...]:
    """The shipped list ``name`` (a key of LABEL_SETS), checked against its known length."""
    if name not in LABEL_SETS:
        raise ISpanError(f"unknown label set {name!r}; choose one of: {', '.join(LABEL_SETS)}")
    labels = _read(_FOLDER / f"{name}.txt")
    if len(labels) != LABEL_SETS[name]:  # a damaged installation, not a user mistake
        raise ISpanError(f"the shipped {name} list has {len(labels)} names, not {LABEL_SETS[name]}")
    return labels


def read_labels(value: str) -> tuple[tuple[str, ...], str]:
    """``--labels``: a shipped set name or a text file with one class name a line.

    Returns the names and where they came from (the set name or the file path).
    """
    if value in LABEL_SETS:
        return label_set(value), value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ISpanError(
            f"--labels {value}: not a label set ({', '.join(LABEL_SETS)}) and not a file; give "
            "one of the sets or a text file with one class name a line, in logit order"
        )
    labels = _read(path)
    if not labels:
        raise ISpanError(f"--labels {value}: the file has no class names (one a line)")
    return labels, str(path)


def _read(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ISpanError(f"cannot read the label file {path} ({exc})") from exc
    return tuple(line.strip() for line in text.splitlines() if line.strip())
