"""Turning command-line inputs (files, folders, globs, ``-`` for stdin) into video paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ispan_cli.video.files import suffix_list, videos_in

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputItem:
    """One video to classify, or an input that named none (``error`` says why)."""

    path: str
    error: str | None = None


def expand_inputs(items: Iterable[str], stdin: TextIO | None = None) -> Iterator[InputItem]:
    """Yields one InputItem per video, lazily (a long list on stdin streams).

    Folders are searched recursively for video extensions, sorted; globs are expanded
    (``**`` recursive), sorted; ``-`` reads one path per line from ``stdin``.
    """
    for item in items:
        if item == "-":
            if stdin is None:
                yield InputItem("-", "'-' reads paths from standard input, but none is available")
                continue
            for line in stdin:
                path = line.strip()
                if path:
                    yield from _expand_one(path)
        else:
            yield from _expand_one(item)


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
