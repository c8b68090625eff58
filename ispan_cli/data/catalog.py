"""From ``--dataset NAME --data-root ROOT --split N`` to a DatasetSplit."""

from __future__ import annotations

from ispan_cli.data import generic, official, synthetic
from ispan_cli.data.items import DatasetSplit, VideoItem
from ispan_cli.errors import ISpanError, UsageError

DATASETS = ("ucf101", "hmdb51", "folder", "list", "synthetic")


def load_dataset(
    name: str,
    root: str | None,
    split: int = 1,
    synthetic_sizes: tuple[int, int] = (1000, 200),
) -> DatasetSplit:
    """Reads a dataset's layout; layout mistakes raise ISpanError saying what was expected.

    synthetic: ``root`` is unused; ``split`` picks the seed, ``synthetic_sizes`` the numbers of
    training and validation clips.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if name == "synthetic":
        n_train, n_val = synthetic_sizes
        return DatasetSplit(
            "synthetic",
            split,
            synthetic.LABELS,
            tuple(
                VideoItem(f"synthetic:train:{i}", i % len(synthetic.LABELS)) for i in range(n_train)
            ),
            tuple(VideoItem(f"synthetic:val:{i}", i % len(synthetic.LABELS)) for i in range(n_val)),
            (),
            f"synthetic (seed {split}): {n_train} training clips, {n_val} validation clips",
        )
    if not root:
        raise UsageError(f"--dataset {name} needs --data-root (the folder holding it)")
    if name == "ucf101":
        return official.load_ucf101(root, split)
    if name == "hmdb51":
        return official.load_hmdb51(root, split)
    if name == "folder":
        return generic.load_folder(root)
    if name == "list":
        return generic.load_list(root)
    raise ISpanError(f"dataset {name} has no loader")  # unreachable: DATASETS is checked above


def check_training_classes(data: DatasetSplit, name: str, root: str | None) -> str | None:
    """A classifier needs two classes to tell apart, and a class learns only from its own
    training videos: --data-root one level too high made one class of the whole tree (and 100%
    accuracy); an empty class folder became a label no video teaches. Raises for fewer than two
    classes; returns the warning for classes without training videos (None: there are none)."""
    if len(data.classes) < 2:
        hint = (
            ": is --data-root one level too high? It should hold the class folders (or "
            "train/ and val/)"
            if name == "folder"
            else ""
        )
        raise ISpanError(
            f"--dataset {name} --data-root {root} has {len(data.classes)} class "
            f"({', '.join(data.classes)}); training needs two or more{hint}"
        )
    counts = [0] * len(data.classes)
    for item in data.train:
        counts[item.label] += 1
    empty = [label for label, n in zip(data.classes, counts, strict=True) if n == 0]
    if not empty or len(empty) == len(data.classes):
        return None
    shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
    return (
        f"warning: {len(empty)} of {len(data.classes)} classes have no training videos "
        f"({shown}): the model never learns them"
    )
