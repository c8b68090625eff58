"""Turning command-line inputs (files, folders, globs, ``-`` for stdin) into video paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# Extensions collected from folders and globs; a file named explicitly is used whatever its name.
VIDEO_EXTENSIONS = frozenset(
    {".3gp", ".avi", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts",
     ".ogv", ".ts", ".webm", ".wmv"}
)  # fmt: skip
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
        found = sorted(
            p for p in _walk(path) if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
        )
        if not found:
            yield InputItem(item, f"folder {item} holds no video files ({_ext_hint()})")
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


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # skip .git, .cache, ...
        for name in filenames:
            yield Path(dirpath) / name


def _ext_hint() -> str:
    return "looked for " + " ".join(sorted(VIDEO_EXTENSIONS))
