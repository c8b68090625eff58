"""What a dataset is once its layout has been read: classes and the videos of each subset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class VideoItem:
    """One labelled video. ``path`` is a file path, or ``synthetic:<subset>:<index>``."""

    path: str
    label: int
    group: str | None = None  # UCF101's gNN: clips of one group never straddle train and test


@dataclass(frozen=True)
class DatasetSplit:
    """Classes (index order = logit order) and the train and test videos of one split.

    missing: listed videos with nothing at their path (counted and skipped, never fatal); see
        :func:`listed`.
    """

    name: str
    split: int
    classes: tuple[str, ...]
    train: tuple[VideoItem, ...]
    test: tuple[VideoItem, ...]
    missing: tuple[str, ...] = field(default=())
    protocol: str = ""  # one line saying what train and test are, for model cards

    def subset(self, which: str) -> tuple[VideoItem, ...]:
        return {"train": self.train, "test": self.test, "val": self.test}[which]


def listed(path: str | Path) -> bool:
    """Whether anything is at a listed video's ``path``; only where nothing is, it is "missing".

    A path that exists but is no readable regular file (a FIFO, a device, a symbolic link loop,
    a folder) stays an item, so the per-file check (``ispan_cli.data.check``) reports it once,
    with its real reason: counted as missing as well, it was logged twice and as "missing".
    """
    return os.path.lexists(path)
