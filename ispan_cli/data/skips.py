"""The skip budget: which listed videos of a split a run does not use and why, the one-line
error past ``--max-skipped``, and the run folder's ``data_check.json``.

Built on the per-file check of :mod:`ispan_cli.data.check`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.data.check import (
    REASONS,
    FileCheck,
    Progress,
    check_videos,
    count_reasons,
)
from ispan_cli.data.items import DatasetSplit, VideoItem
from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_write_text

SUMMARY_FILE = "data_check.json"
SHOWN_IN_ERRORS = 5  # skipped files named in the budget error


@dataclass(frozen=True)
class SkipReport:
    """Which listed videos a run does not use, and why: the videos the check rejected, the
    ones missing on disk, and any that failed later while loading.

    max_skipped: the share of ``listed`` that may be skipped (``--max-skipped``).
    """

    listed: int
    max_skipped: float
    skipped: tuple[FileCheck, ...] = field(default=())

    @property
    def fraction(self) -> float:
        return len(self.skipped) / self.listed if self.listed else 0.0

    def by_reason(self) -> dict[str, int]:
        return count_reasons(s.reason for s in self.skipped)

    def with_failure(self, path: str, message: str) -> SkipReport:
        """One more skipped video (a file that passed the check but failed when loaded)."""
        if any(s.path == path for s in self.skipped):
            return self
        extra = FileCheck(path, "decode_error", message)
        return SkipReport(self.listed, self.max_skipped, (*self.skipped, extra))

    def describe(self) -> str:
        """One line, e.g. ``3 of 20 listed videos skipped (15.0%): 2 truncated or empty, 1 not a
        video``."""
        head = f"{len(self.skipped)} of {self.listed} listed videos skipped"
        if not self.skipped:
            return head
        parts = ", ".join(f"{n} {REASONS.get(r, r)}" for r, n in self.by_reason().items())
        return f"{head} ({100 * self.fraction:.1f}%): {parts}"

    def enforce(self, what: str) -> None:
        """Raises ISpanError, naming the first few files and their reasons, when more than
        ``max_skipped`` of the listed videos are skipped."""
        if self.fraction <= self.max_skipped:
            return
        shown = "; ".join(
            f"{s.path} ({REASONS.get(s.reason or '', s.reason)})"
            for s in self.skipped[:SHOWN_IN_ERRORS]
        )
        more = len(self.skipped) - SHOWN_IN_ERRORS
        shown += f"; and {more} more" if more > 0 else ""
        raise ISpanError(
            f"{len(self.skipped)} of the {self.listed} listed videos of {what} cannot be used "
            f"({100 * self.fraction:.1f}%, more than --max-skipped {self.max_skipped:g}): {shown}. "
            "Fix or remove them (`ispan data check` lists every one with its reason), or raise "
            "--max-skipped"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "skipped": len(self.skipped),
            "fraction": round(self.fraction, 6),
            "max_skipped": self.max_skipped,
            "by_reason": self.by_reason(),
            "files": [
                {"path": s.path, "reason": s.reason, "message": s.message} for s in self.skipped
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SkipReport:
        files = tuple(FileCheck(f["path"], f["reason"], f.get("message", "")) for f in d["files"])
        return cls(int(d["listed"]), float(d["max_skipped"]), files)


def check_split(
    data: DatasetSplit,
    subsets: tuple[str, ...],
    segments: int,
    decoder: str = "auto",
    short_side: int | None = None,
    workers: int = 0,
    cache: str | Path | None = None,
    max_skipped: float = 1.0,
    progress: Progress | None = None,
) -> tuple[DatasetSplit, SkipReport]:
    """Checks the videos of ``subsets`` ("train", "test") of a split; returns the split without
    the videos that fail and what was skipped (the split's missing videos included). Synthetic
    items are generated, not read: they are not checked. Does not enforce the budget: call
    :meth:`SkipReport.enforce`."""
    chosen = {s: data.subset(s) for s in subsets}
    paths = list(
        dict.fromkeys(
            item.path
            for items in chosen.values()
            for item in items
            if not item.path.startswith("synthetic:")
        )
    )
    report = check_videos(paths, segments, decoder, short_side, workers, cache, progress)
    bad = {r.path: r for r in report.failed}

    def keep(items: tuple[VideoItem, ...]) -> tuple[VideoItem, ...]:
        return tuple(i for i in items if i.path not in bad)

    missing = tuple(FileCheck(p, "missing", "listed but not on disk") for p in data.missing)
    listed = sum(len(items) for items in chosen.values()) + len(data.missing)
    skipped = (*missing, *bad.values())
    filtered = DatasetSplit(
        data.name,
        data.split,
        data.classes,
        keep(data.train) if "train" in chosen else data.train,
        keep(data.test) if "test" in chosen or "val" in chosen else data.test,
        data.missing,
        data.protocol,
    )
    return filtered, SkipReport(listed, max_skipped, skipped)


def write_summary(folder: Path, report: SkipReport, segments: int, decoder: str) -> Path:
    """data_check.json in a run folder, written atomically."""
    doc = {"segments": segments, "decoder": decoder, **report.to_dict()}
    return atomic_write_text(folder / SUMMARY_FILE, json.dumps(doc, indent=2) + "\n")
