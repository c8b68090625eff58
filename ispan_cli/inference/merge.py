"""Part files of a sharded classify job and their merge back into one output, in input order.

Shard ``i`` of ``n`` writes ``out.jsonl.part-0000i-of-0000n`` (records of inputs ``i, i+n,
i+2n, ...``, in order) and, when it has finished, ``...part-0000i-of-0000n.done`` (its record
count). Merging interleaves the parts round-robin, which restores the input order exactly, checks
every count, writes ``out.jsonl`` atomically and removes the parts. One record per input
(timeline mode, several per input, is not sharded).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_open, atomic_write_text
from ispan_cli.terminal import visible

DONE_SUFFIX = ".done"
_PART = re.compile(r"\.part-(\d{5})-of-(\d{5})$")


def part_path(output: str | Path, index: int, count: int) -> Path:
    output = Path(output)
    return output.with_name(f"{output.name}.part-{index:05d}-of-{count:05d}")


def done_path(part: Path) -> Path:
    return part.with_name(part.name + DONE_SUFFIX)


def mark_done(part: Path, records: int, fmt: str) -> None:
    """Says that ``part`` is complete: written last, atomically, after the part is synced."""
    atomic_write_text(done_path(part), json.dumps({"records": records, "format": fmt}) + "\n")


def clear_done(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        done_path(part).unlink()


@dataclass(frozen=True)
class MergeResult:
    output: str
    parts: int
    records: int
    format: str

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "parts": self.parts,
            "records": self.records,
            "format": self.format,
        }


def part_counts(output: str | Path) -> dict[int, list[int]]:
    """Shard count -> indices of the part files found beside ``output``."""
    output = Path(output)
    found: dict[int, list[int]] = {}
    folder = output.parent if str(output.parent) else Path(".")
    prefix = output.name + ".part-"
    for entry in folder.iterdir():
        if not entry.name.startswith(prefix):
            continue
        match = _PART.search(entry.name[len(output.name) :])
        if match:
            found.setdefault(int(match.group(2)), []).append(int(match.group(1)))
    return {n: sorted(v) for n, v in found.items()}


def missing_parts(output: str | Path, count: int) -> list[int]:
    """Indices of the parts of ``count`` that are not complete yet."""
    return [i for i in range(count) if not done_path(part_path(output, i, count)).is_file()]


def merge_parts(output: str | Path, count: int | None = None) -> MergeResult:
    """Merges the complete parts of ``output`` into it and removes them.

    ``count``: the number of shards (None: from the part files found, which must agree).
    """
    output = Path(output)
    if count is None:
        counts = part_counts(output)
        if not counts:
            raise ISpanError(
                f"no part files of {visible(output)} ({visible(output.name)}.part-*-of-*) beside "
                "it; merge names the output the sharded classify wrote (-o), not a part"
            )
        if len(counts) > 1:
            listed = ", ".join(f"{len(v)} of {n}" for n, v in sorted(counts.items()))
            raise ISpanError(
                f"{visible(output)} has parts of jobs with different shard counts ({listed}); "
                "remove the parts of the job you do not want"
            )
        count = next(iter(counts))
    missing = missing_parts(output, count)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ISpanError(
            f"{len(missing)} of {count} parts of {visible(output)} are not complete (shards "
            f"{shown}); run those shards again with the same command and --resume "
            f"(--shard I/{count}), then merge"
        )
    parts = [part_path(output, i, count) for i in range(count)]
    markers = [json.loads(done_path(p).read_text()) for p in parts]
    formats = {m["format"] for m in markers}
    if len(formats) != 1:
        raise ISpanError(f"the parts of {visible(output)} mix formats ({', '.join(formats)})")
    fmt = formats.pop()
    expected = [m["records"] for m in markers]
    with atomic_open(output, "wb") as out:
        counts_seen = (_merge_csv if fmt == "csv" else _merge_lines)(parts, out)
        if counts_seen != expected:
            bad = [i for i, (a, b) in enumerate(zip(counts_seen, expected, strict=True)) if a != b]
            raise ISpanError(
                f"part {bad[0]} of {visible(output)} holds {counts_seen[bad[0]]} records but its "
                f"marker says {expected[bad[0]]}; run that shard again with --resume"
            )
    for part in parts:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        clear_done(part)
    return MergeResult(str(output), count, sum(expected), fmt)


def _round_robin(parts: list[Iterator], what: list[Path]) -> Iterator[tuple[int, object]]:
    """(part, item) taking one item from each part in turn; checks that the parts end together,
    as the shares of one input stream do."""
    n = len(parts)
    i = 0
    while True:
        item = next(parts[i % n], None)
        if item is None:
            break
        yield i % n, item
        i += 1
    for j in range(n):  # every other part must be finished at this point too
        if j != i % n and next(parts[j], None) is not None:
            raise ISpanError(
                f"{visible(what[j])} has records past the end of {visible(what[i % n])}: the "
                "parts are not shares of one job; run the shards again with the same inputs"
            )


def _merge_lines(parts: list[Path], out) -> list[int]:
    counts = [0] * len(parts)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "rb")) for p in parts]
        for k, line in _round_robin([iter(f) for f in files], parts):
            if not line.endswith(b"\n"):
                raise ISpanError(f"{visible(parts[k])} ends in a torn line; resume that shard")
            out.write(line)
            counts[k] += 1
    return counts


def _merge_csv(parts: list[Path], out) -> list[int]:
    import io

    counts = [0] * len(parts)
    text = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", newline="")
    writer = csv.writer(text, lineterminator="\n")
    with contextlib.ExitStack() as stack:
        readers = []
        for p in parts:
            fh = stack.enter_context(
                open(p, encoding="utf-8", errors="surrogateescape", newline="")
            )
            reader = csv.reader(fh, strict=True)
            readers.append((reader, next(reader, None)))  # each part has its header
        header = next((h for _, h in readers if h is not None), None)
        if header is not None:
            writer.writerow(header)
        for k, row in _round_robin([iter(r) for r, _ in readers], parts):
            writer.writerow(row)
            counts[k] += 1
    text.flush()
    text.detach()
    return counts


def try_merge(output: str | Path, count: int) -> MergeResult | str | None:
    """Merges if every part is complete: the result; ``"merged"`` when another process already
    merged (or is merging) them; None while parts are missing."""
    from ispan_cli.outputs import exclusive

    output = Path(output)
    if missing_parts(output, count):
        return "merged" if _merged(output, count) else None
    try:
        lock = exclusive(output)
        lock.__enter__()
    except ISpanError:  # another shard holds the output: it is merging
        return "merged"
    try:
        if missing_parts(output, count):  # merged while this one waited for the lock
            return "merged" if _merged(output, count) else None
        return merge_parts(output, count)
    finally:
        lock.__exit__(None, None, None)


def _merged(output: Path, count: int) -> bool:
    return output.is_file() and not any(part_path(output, i, count).exists() for i in range(count))
