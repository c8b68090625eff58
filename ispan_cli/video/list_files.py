"""List files: the one rule for reading a list of videos, for every command that takes one.

``classify``, ``data check`` and ``flow extract`` read lists the same way:

- A list is a file ending in ``.txt``, ``.lst`` or ``.csv`` (or, for ``classify``, any file given
  as ``@FILE``, and ``-`` for standard input).
- One entry a line; blank lines and lines starting with ``#`` are skipped. A NUL byte also ends
  an entry (``find -print0``): no path can hold one.
- In a ``.txt``/``.lst`` line, trailing whitespace-separated integers are dropped, so the
  official UCF101/HMDB51 lists (``path 1``) and MMAction2's (``path 300 5``) name their videos;
  the rest of the line is the entry, spaces included (``my clip.mp4``).
- In a ``.csv`` file, the entry is the first field (quoted fields as the csv module reads them),
  and a header row (``path``, ``video``, ``filename`` or ``file``) is skipped.
- Relative paths are relative to the current folder, as on standard input.
- UTF-8, a leading byte order mark skipped; a file starting with a UTF-16 byte order mark is
  read as UTF-16 (:func:`open_list`).

Lists are read a line at a time: a list of a million entries costs no memory.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

LIST_SUFFIXES = (".txt", ".lst", ".csv")
_TRAILING_INTEGERS = re.compile(r"(\s+[+-]?\d+)+$")  # labels, frame counts
_CSV_HEADERS = frozenset({"path", "video", "filename", "file"})


def is_list_file(path: str | Path) -> bool:
    """Whether ``path`` has a list suffix (it is not checked to exist)."""
    return Path(path).suffix.lower() in LIST_SUFFIXES


def open_list(path: Path) -> TextIO:
    """A list file, opened for :func:`list_entries`: UTF-8 (a byte order mark, as Windows
    editors and Excel write, is dropped by list_entries), or UTF-16 where it starts with its
    byte order mark (PowerShell's ``ls > list.txt``). Bytes that are not UTF-8 are kept (as
    surrogates): a path name need not be text. A pipe is not sniffed: the bytes read would be
    lost to the list."""
    encoding = "utf-8"
    if path.is_file():
        with open(path, "rb") as fh:
            if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                encoding = "utf-16"
    return open(path, encoding=encoding, errors="surrogateescape")


def list_entries(lines: Iterable[str], *, csv_fields: bool = False) -> Iterator[str]:
    """The entries of a list's lines, lazily (see the module docstring for the rule)."""
    lines = _without_bom(lines)  # standard input from a Windows tool, or a file opened as UTF-8
    if csv_fields:
        yield from _csv_entries(lines)
        return
    for line in lines:
        for part in line.split("\0"):
            entry = _entry(part)
            if entry:
                yield entry


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    first = True
    for line in lines:
        yield line.removeprefix("\ufeff") if first else line
        first = False


def _entry(line: str) -> str:
    text = line.strip()
    if not text or text.startswith("#"):
        return ""
    return _TRAILING_INTEGERS.sub("", text)


def _csv_entries(lines: Iterable[str]) -> Iterator[str]:
    first = True
    for row in csv.reader(_uncommented(lines)):
        if not row or not row[0].strip():
            continue
        entry = row[0].strip()
        if first and entry.lower() in _CSV_HEADERS:
            first = False
            continue
        first = False
        yield entry


def _uncommented(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            yield line
