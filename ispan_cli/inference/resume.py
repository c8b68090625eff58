"""``classify --resume``: what an earlier, possibly killed, run already wrote to the output file.

Records are appended as whole lines and synced per batch (records.py), so a killed run leaves
complete records and at most one torn last line. Reading the file back: the torn tail is cut off
(and reported), every record must carry the settings of this run (another model, K or crop count
would mix two different classifications in one file: refused, listing the differences), and
the inputs that have a record are skipped. Memory: the set of those inputs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ispan_cli.errors import ISpanError
from ispan_cli.inference.records import CSV_COLUMNS
from ispan_cli.terminal import visible

RESUMABLE_FORMATS = ("jsonl", "csv")


@dataclass
class ResumeState:
    """An output file ready for appending."""

    done: set[str] = field(default_factory=set)  # inputs that have a record
    records: int = 0  # records kept
    kept_bytes: int = 0  # the file is truncated to this length
    dropped_bytes: int = 0  # a torn last line (or a timeline input's partial windows) dropped
    dropped_note: str = ""  # what was dropped, for a note on stderr
    has_header: bool = False  # csv: the header row is there
    last_input: str | None = None  # the input of the last record
    last_input_at: int = 0  # the offset where the last input's records start


def comparable(record: dict) -> dict:
    """The parts of a record that must match for two runs to share a file."""
    model = record.get("model") or {}
    settings = record.get("settings")
    if settings is None:
        return {"settings": None}
    return {
        "model": model.get("sha256") or model.get("id"),
        "runtime": record.get("runtime"),
        "precision": record.get("precision"),
        **settings,
    }


def csv_comparable(row: dict) -> dict:
    try:
        settings = json.loads(row.get("settings") or "null")
    except ValueError:
        settings = None
    if not isinstance(settings, dict):
        return {"settings": None}
    return {"model": row.get("model_sha256") or row.get("model_id"), **settings}


def differences(found: dict, expected: dict) -> list[str]:
    """``name: <file> in the file, <now> now`` for every setting that differs."""
    if found.get("settings", "") is None:
        return ["its records carry no settings (written by an older ispan)"]
    out = []
    for key in sorted(set(found) | set(expected)):
        if found.get(key) != expected.get(key):
            out.append(f"{key}: {found.get(key)!r} in the file, {expected.get(key)!r} now")
    return out


def read_for_resume(
    path: str | Path, fmt: str, expected: dict, *, partial_last_input: bool = False
) -> ResumeState:
    """Reads an earlier run's ``path`` (absent or empty: a fresh start) and truncates it to its
    complete records. ``expected``: :func:`comparable` of this run's records.
    ``partial_last_input``: the last input may have only some of its records (timeline mode,
    one record per window): its records are dropped and it is classified again.
    """
    path = Path(path)
    if fmt not in RESUMABLE_FORMATS:
        raise ISpanError(
            f"--resume appends to a jsonl or csv file; {fmt} cannot be appended to (use "
            "--format jsonl or csv, or an --output ending in .jsonl or .csv)"
        )
    if not path.exists() or path.stat().st_size == 0:
        return ResumeState()
    state = _read_jsonl(path, expected) if fmt == "jsonl" else _read_csv(path, expected)
    if partial_last_input and state.records:
        _drop_last_input(path, fmt, state)
    size = path.stat().st_size
    if state.kept_bytes < size:
        with open(path, "r+b") as fh:
            fh.truncate(state.kept_bytes)
    return state


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each line, the newline included; a torn last line has none."""
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            yield offset, line
            offset += len(line)


def _mismatch(path: Path, line: int, found: dict, expected: dict) -> ISpanError:
    listed = "; ".join(differences(found, expected))
    return ISpanError(
        f"--resume: {visible(path)} was written with other settings (record {line}: {listed}); "
        "run with the same model and settings, or choose another --output"
    )


def _read_jsonl(path: Path, expected: dict) -> ResumeState:
    state = ResumeState()
    for n, (offset, line) in enumerate(_lines(path), start=1):
        if not line.endswith(b"\n"):
            state.dropped_bytes = len(line)
            state.dropped_note = f"a torn last line ({len(line)} bytes)"
            break
        try:
            record = json.loads(line)
            key = record["input"]
        except (ValueError, KeyError, TypeError):
            raise ISpanError(
                f"--resume: line {n} of {visible(path)} is not a classify record; resume only "
                "an output that ispan classify wrote, or choose another --output"
            ) from None
        found = comparable(record)
        if found != expected:
            raise _mismatch(path, n, found, expected)
        if key != state.last_input:
            state.last_input, state.last_input_at = key, offset
        state.done.add(key)
        state.records += 1
        state.kept_bytes = offset + len(line)
    return state


def _read_csv(path: Path, expected: dict) -> ResumeState:
    state = ResumeState()
    ends: list[int] = [0]  # bytes consumed when the csv reader asked for more

    def text_lines() -> Iterator[str]:
        for offset, line in _lines(path):
            ends[0] = offset + len(line)
            if not line.endswith(b"\n"):
                return  # torn: left out, so the rows before it parse
            yield line.decode("utf-8", errors="surrogateescape")

    reader = csv.reader(text_lines(), strict=True)
    row_start = 0
    n = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:  # a quoted field cut inside: only a torn end can do that
            break
        n += 1
        end = ends[0]
        if n == 1:
            if tuple(row) != CSV_COLUMNS:
                raise ISpanError(
                    f"--resume: {visible(path)} does not start with the header ispan classify "
                    "writes (another program's CSV, or an older ispan's); choose another --output"
                )
            state.has_header = True
        elif len(row) != len(CSV_COLUMNS):
            raise ISpanError(
                f"--resume: record {n - 1} of {visible(path)} has {len(row)} fields, not "
                f"{len(CSV_COLUMNS)}; resume only an output that ispan classify wrote"
            )
        else:
            values = dict(zip(CSV_COLUMNS, row, strict=True))
            found = csv_comparable(values)
            if found != expected:
                raise _mismatch(path, n - 1, found, expected)
            if values["input"] != state.last_input:
                state.last_input, state.last_input_at = values["input"], row_start
            state.done.add(values["input"])
            state.records += 1
        state.kept_bytes = end
        row_start = end
    size = path.stat().st_size
    if state.kept_bytes < size:
        state.dropped_bytes = size - state.kept_bytes
        state.dropped_note = f"a torn last record ({state.dropped_bytes} bytes)"
    return state


def _drop_last_input(path: Path, fmt: str, state: ResumeState) -> None:
    start, key = state.last_input_at, state.last_input
    dropped = state.kept_bytes - start
    count = _count_from(path, fmt, start, state.kept_bytes)
    state.done.discard(key)
    state.records -= count
    state.kept_bytes = start
    state.dropped_bytes += dropped
    what = f"the {count} record(s) of the last input, {visible(key)}, classified again"
    state.dropped_note = f"{state.dropped_note} and {what}" if state.dropped_note else what


def _count_from(path: Path, fmt: str, start: int, end: int) -> int:
    with open(path, "rb") as fh:
        fh.seek(start)
        text = fh.read(end - start).decode("utf-8", errors="surrogateescape")
    if fmt == "jsonl":
        return text.count("\n")
    return sum(1 for _ in csv.reader(text.splitlines(keepends=True)))
