"""Where a classify job's records go: stdout, a file replaced when complete, a file resumed and
appended to, or this shard's part file; which inputs this process still has to classify.

The command builds an :class:`OutputTarget`, opens it with :func:`open_target` (which reads an
earlier run back for ``--resume``) and filters the inputs with :func:`pending_items`; after the
run, :func:`finish_target` marks a part complete and merges the parts once all are.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.merge import (
    MergeResult,
    clear_done,
    mark_done,
    missing_parts,
    part_path,
    try_merge,
)
from ispan_cli.inference.records import RecordWriter
from ispan_cli.inference.resume import RESUMABLE_FORMATS, ResumeState, read_for_resume
from ispan_cli.inference.shards import Shard
from ispan_cli.terminal import visible

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class OutputTarget:
    output: Path | None  # None: standard output
    fmt: str
    resume: bool = False
    shard: Shard | None = None
    timeline: bool = False
    live: bool = False  # an input is a live source: records must be readable as they come

    def __post_init__(self) -> None:
        if self.resume or self.shard:
            what = "--resume" if self.resume else f"{self.shard} (sharded run)"
            if self.output is None:
                raise UsageError(f"{what} needs --output FILE (.jsonl or .csv)")
            if self.fmt not in RESUMABLE_FORMATS:
                raise UsageError(
                    f"{what} writes jsonl or csv (records appended as lines), not {self.fmt}; "
                    "use --format jsonl or csv, or an --output ending in .jsonl or .csv"
                )
        if self.shard and self.timeline:
            raise UsageError(
                "--window (timeline mode) is not sharded: each video gives many records; run "
                "one process per list of videos instead (each with its own --output)"
            )

    @property
    def path(self) -> Path | None:
        """The file this process writes: its part file when sharded."""
        if self.shard is None or self.output is None:
            return self.output
        return part_path(self.output, self.shard.index, self.shard.count)

    @property
    def appends(self) -> bool:
        """Written in place, line by line, synced per batch (not replaced when complete). A
        live source has no end to wait for: its file is written in place too, so ``tail -f``
        sees each window's record as it is classified and a kill loses none of them."""
        return self.resume or self.shard is not None or self.live


@dataclass
class Opened:
    writer: RecordWriter
    state: ResumeState = field(default_factory=ResumeState)


@contextlib.contextmanager
def open_target(target: OutputTarget, expected: dict, batch: int) -> Iterator[Opened]:
    """The writer for ``target``; with ``--resume``, after reading the earlier run back.

    ``expected``: :func:`ispan_cli.inference.resume.comparable` of this run's records.
    """
    from ispan_cli.model_folder import atomic_open

    path = target.path
    if path is None:
        yield Opened(RecordWriter(target.fmt, sys.stdout))
        return
    if not target.appends:  # replaced only once complete: a kill leaves the previous file
        with atomic_open(path, "w", newline="", **_TEXT) as stream:
            yield Opened(RecordWriter(target.fmt, stream))
        return
    if target.shard is not None:
        clear_done(path)  # the part changes: not complete until this run says so
    state = ResumeState()
    if target.resume:
        state = read_for_resume(path, target.fmt, expected, partial_last_input=target.timeline)
    with open(path, "a" if target.resume else "w", newline="", **_TEXT) as stream:
        writer = RecordWriter(
            target.fmt, stream, durable=True, batch=batch, header=not state.has_header
        )
        yield Opened(writer, state)


_TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}  # any file name round-trips


class Counter:
    """Counts the items that pass through (all inputs, before sharding)."""

    def __init__(self) -> None:
        self.count = 0

    def through(self, items: Iterable[InputItem]) -> Iterator[InputItem]:
        for item in items:
            self.count += 1
            yield item


def pending_items(
    items: Iterable[InputItem],
    shard: Shard | None,
    done: set[str],
    skipped: list[int],
    resume: bool = False,
) -> Iterator[InputItem]:
    """This process's share of ``items`` less those with a record already (``skipped[0]``
    counts them). ``resume``: an input listed twice is classified once, so that a run that was
    killed and resumed writes what one uninterrupted run writes."""
    if shard is not None:
        items = shard.take(items)
    for item in items:
        if item.path in done:
            skipped[0] += 1
            continue
        if resume:
            done.add(item.path)
        yield item


def finish_target(
    target: OutputTarget, records: int, wait: float = 0.0, say=None
) -> MergeResult | str | None:
    """After a sharded run: marks the part complete, then merges if every part is. ``wait``:
    seconds to poll for the other parts (rank 0 under a launcher); 0 checks once.

    Returns the merge, ``"merged"`` if another process merged, or None (parts still missing).
    """
    if target.shard is None or target.output is None:
        return None
    mark_done(target.path, records, target.fmt)
    count = target.shard.count
    deadline = time.monotonic() + wait
    told = False
    while True:
        result = try_merge(target.output, count)
        if result is not None or time.monotonic() >= deadline:
            return result
        if say is not None and not told:
            missing = missing_parts(target.output, count)
            say(f"waiting for {len(missing)} other part(s) to merge {target.output}")
            told = True
        time.sleep(POLL_SECONDS)


def not_merged_error(target: OutputTarget) -> ISpanError:
    missing = missing_parts(target.output, target.shard.count)
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    out = visible(target.output)
    return ISpanError(
        f"{out} not merged: {len(missing)} part(s) still incomplete (shards {shown}); when they "
        f"finish, run `ispan merge {out}`"
    )
