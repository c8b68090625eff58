"""What a dataset is once its layout has been read: classes and the videos of each subset."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VideoItem:
    """One labelled video. ``path`` is a file path, or ``synthetic:<subset>:<index>``."""

    path: str
    label: int
    group: str | None = None  # UCF101's gNN: clips of one group never straddle train and test


@dataclass(frozen=True)
class DatasetSplit:
    """Classes (index order = logit order) and the train and test videos of one split.

    missing: listed videos that are not on disk (counted and skipped, never fatal).
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
