"""Which files in a folder are videos: the one suffix list, for every command that searches one.

classify, ``train --dataset folder``, ``data check`` and ``export --calibration`` all take the
same files from the same folder. A file named explicitly is used whatever its name; the decoder
says what it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Containers FFmpeg (PyAV) demuxes that people keep video in, compared case-insensitively.
# Broadcast and camera formats (.ts, .m2ts, .mts, .mxf, .vob, .dv), phone formats (.3gp,
# .3g2), Windows (.wmv, .asf), Flash (.flv, .f4v), Ogg (.ogv), QuickTime (.mov, .qt).
VIDEO_SUFFIXES = (
    ".3g2", ".3gp", ".asf", ".avi", ".divx", ".dv", ".f4v", ".flv", ".m2ts", ".m2v", ".m4v",
    ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts", ".mxf", ".ogv", ".qt", ".ts", ".vob",
    ".webm", ".wmv",
)  # fmt: skip


def is_video_name(path: str | Path) -> bool:
    """Whether the file name has one of :data:`VIDEO_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def videos_in(folder: str | Path) -> list[Path]:
    """The video files under ``folder``, recursively, sorted.

    Hidden folders (``.git``, ``.cache``, ...) are not searched, and symbolic links to folders
    are not followed (no loops).
    """
    return sorted(p for p in _walk(Path(folder)) if is_video_name(p) and p.is_file())


def suffix_list() -> str:
    """The suffixes for an error message: ``.3g2 .3gp ... .wmv``."""
    return " ".join(VIDEO_SUFFIXES)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # skip .git, .cache, ...
        for name in filenames:
            yield Path(dirpath) / name
