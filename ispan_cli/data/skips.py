"""The skip budget: which listed videos of a split a run does not use and why, the one-line
error past ``--max-skipped``, and the run folder's ``data_check.json``.

Built on the per-file check of :mod:`ispan_cli.data.check`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.data.check import (
    CACHE_FILE,
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
SHOWN_SKIPS = 5  # skipped videos named on the terminal; the run log names every one


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


class RunSkips:
    """A training run's skip budget as the run goes: the check of every listed video before the
    first step (:meth:`check`), then the videos that pass it but fail when loaded (:meth:`fail`,
    each counted once). ``report`` is the run's :class:`SkipReport` at any moment.

    note: a line for the user that also goes to the run's log; show: a line for the user only
    (the log names every skipped file itself, through ``logger``); log_name: the run log's file
    name, for the line that says where the rest are.
    """

    def __init__(
        self,
        max_skipped: float,
        note: Callable[[str], None],
        show: Callable[[str], None],
        logger: logging.Logger,
        log_name: str,
    ) -> None:
        self.report = SkipReport(0, max_skipped)
        self.later: dict[str, str] = {}  # path -> message: the videos that failed after the check
        self._note, self._show, self._log, self._log_name = note, show, logger, log_name

    def check(
        self,
        data: DatasetSplit,
        what: str,
        segments: int,
        decoder: str,
        short_side: int | None,
        workers: int,
        folder: Path,
        main: bool,
        gather: Callable[[Any], list[Any]],
        progress: Progress | None = None,
    ) -> DatasetSplit:
        """Checks every listed video of ``data`` once (cached in the run ``folder``, so a resume
        reuses it), returns the split without the ones that cannot be used, and raises when more
        than ``max_skipped`` are. Only the ``main`` process scans; ``gather`` hands its answer to
        every process of the group (all processes' objects, the main's first), so a failure is
        raised everywhere and none waits forever. what: the dataset's name, for the error."""
        max_skipped = self.report.max_skipped
        if data.name == "synthetic":  # generated, not read: nothing can be missing or broken
            self.report = SkipReport(len(data.train) + len(data.test), max_skipped)
            return data
        shared: tuple[Any, Any] = (None, None)  # (split and report, or None and the error)
        if main:  # one scan, by the main process's data loader workers; the others wait for it
            try:
                shared = (
                    check_split(
                        data, ("train", "test"), segments, decoder, short_side, workers,
                        folder / CACHE_FILE, max_skipped, progress,
                    ),
                    None,
                )  # fmt: skip
            except Exception as exc:  # raised on every process below
                shared = None, (isinstance(exc, ISpanError), str(exc))
        result, failure = gather(shared)[0]
        if failure is not None:
            user_error, text = failure
            raise (ISpanError if user_error else RuntimeError)(text)
        data, self.report = result
        for s in self.report.skipped:
            self._log.warning("skipped %s: %s (%s)", s.path, s.reason, s.message)
        for s in self.report.skipped[:SHOWN_SKIPS]:
            self._show(f"skipped {s.describe()}")
        more = len(self.report.skipped) - SHOWN_SKIPS
        tail = f" (the other {more} are in {self._log_name})" if more > 0 else ""
        self._note(f"checked the listed videos: {self.report.describe()}{tail}")
        if main:
            write_summary(folder, self.report, segments, decoder)
        self.report.enforce(f"{what} (training and validation)")
        return data

    def fail(self, path: str, message: str, quiet: bool = False) -> None:
        """A video that passed the check but failed when loaded: skipped and counted."""
        if path in self.later:
            return
        self.later[path] = message
        self.report = self.report.with_failure(path, message)
        self._log.warning("skipped %s: %s", path, message)
        if not quiet:
            self._note(f"skipped {path}: {message}")
