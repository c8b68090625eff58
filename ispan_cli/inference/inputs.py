"""Turning command-line inputs into the items to classify, lazily.

An input is a string. Kinds today: a video file, a folder (searched recursively), a glob pattern,
``-`` (one input a line on standard input), a list file (``.txt``, ``.lst``, ``.csv``, or any
file as ``@FILE``: one input a line, read by the rule of :mod:`ispan_cli.video.list_files`).
A later source (a URL, a stream) is one more branch in :func:`_expand_one`: an item carries the
string, never a Path, so nothing downstream assumes a local file. Lists are read a line at a
time, so a list of a million paths costs no memory.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ispan_cli.video.files import suffix_list, videos_in
from ispan_cli.video.list_files import is_list_file, list_entries, open_list
from ispan_cli.video.sniff import container_family

_GLOB_CHARS = set("*?[")
LIST_PREFIX = "@"


@dataclass(frozen=True)
class InputItem:
    """One video to classify, or an input that named none (``error`` says why)."""

    path: str
    error: str | None = None


def is_list_input(item: str) -> bool:
    """Whether ``item`` names a list of inputs rather than a video: ``-``, ``@FILE``, or a
    ``.txt``/``.lst``/``.csv`` file (never a video suffix)."""
    return item == "-" or (item.startswith(LIST_PREFIX) and len(item) > 1) or is_list_file(item)


def expand_inputs(items: Iterable[str], stdin: TextIO | None = None) -> Iterator[InputItem]:
    """Yields one InputItem per video, lazily (a long list streams).

    Folders are searched recursively for video extensions, sorted; globs are expanded
    (``**`` recursive), sorted; ``-`` reads one input per line from ``stdin``; a list file
    likewise from the file. Lines of a list are inputs themselves (a folder, a glob), except
    that a list does not name further lists; blank lines are skipped; relative paths are
    relative to the current folder, as on stdin.
    """
    for item in items:
        if item == "-":
            if stdin is None:
                yield InputItem("-", "'-' reads paths from standard input, but none is available")
                continue
            yield from _expand_lines(stdin)
        elif is_list_input(item):
            yield from _expand_list_file(item)
        else:
            yield from _expand_one(item)


def _expand_lines(lines: Iterable[str], *, csv_fields: bool = False) -> Iterator[InputItem]:
    for entry in list_entries(lines, csv_fields=csv_fields):
        yield from _expand_one(entry)


def _expand_list_file(item: str) -> Iterator[InputItem]:
    name = item[1:] if item.startswith(LIST_PREFIX) else item
    path = Path(name).expanduser()
    try:
        handle = open_list(path)
    except FileNotFoundError:
        yield InputItem(item, f"list file {name} does not exist; check the path{_named(item)}")
        return
    except IsADirectoryError:
        yield InputItem(item, f"list file {name} is a folder; give the folder itself, not {item}")
        return
    except OSError as exc:
        yield InputItem(item, f"cannot read list file {name}: {exc.strerror or exc}")
        return
    with handle:
        # @clip.mp4 for clip.mp4 (or for @clip.mp4); a pipe (@<(find ...)) is not sniffed: the
        # bytes read would be lost to the list
        if path.is_file() and container_family(path) is not None:
            how = _named(item) or f"; give it as {name}, without the {LIST_PREFIX}"
            yield InputItem(item, f"list file {name} is a video, not a list of inputs{how}")
            return
        yield from _expand_lines(handle, csv_fields=path.suffix.lower() == ".csv")


def _named(item: str) -> str:
    """For an error about list file @NAME: how to give a video whose own name starts with @."""
    if not item.startswith(LIST_PREFIX) or not Path(item).is_file():
        return ""
    return f" (to classify the video {item} itself, give it as ./{item})"


def _expand_one(item: str) -> Iterator[InputItem]:
    path = Path(item).expanduser()
    if path.is_dir():
        found = videos_in(path)
        if not found:
            why = f"folder {item} holds no video files (looked for {suffix_list()})"
            yield InputItem(item, why)
        for p in found:
            yield InputItem(str(p))
    elif _GLOB_CHARS & set(item) and not path.exists():
        matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
        videos = [m for m in matches if Path(m).is_file()]
        if not videos:
            yield InputItem(item, f"pattern {item} matches no files")
        for m in videos:
            yield InputItem(m)
    else:  # a file, or a missing path the decoder reports with its own clear error
        yield InputItem(item)
