"""Which files in a folder are videos: the one suffix list, for every command that searches one.

classify, ``train --dataset folder``, ``data check`` and ``export --calibration`` all take the
same files from the same folder. A file named explicitly is used whatever its name; the decoder
says what it is.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
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


# Warnings about what a search leaves out; the CLI prints them as "warning:" lines.
log = logging.getLogger("ispan.files")


def is_video_name(path: str | Path) -> bool:
    """Whether the file name has one of :data:`VIDEO_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def videos_in(folder: str | Path) -> list[Path]:
    """The video files under ``folder``, recursively, sorted.

    Hidden folders (``.git``, ``.cache``, ...) are not searched, symbolic links to folders
    are not followed (no loops), and macOS's ``._NAME`` metadata files (never videos) are left
    out. Never silent about anything else it leaves out: a subfolder it cannot read, and a
    video-named entry that is a symbolic link loop, a broken link or not a regular file (a
    pipe, socket or device), are each logged as a warning on the ``ispan.files`` logger, which
    the CLI prints as one ``warning:`` line.
    """
    found = []
    for path in _walk(Path(folder)):
        if not is_video_name(path):
            continue
        problem = _not_a_file(path)
        if problem is None:
            if not _apple_double(path):  # opened only once known to be a regular file
                found.append(path)
        else:
            log.warning("skipped %s: %s", path, problem)
    return sorted(found)


def _apple_double(path: Path) -> bool:
    """Whether ``path`` is the ``._NAME`` file macOS writes beside each file it copies to a
    drive without its own metadata (exFAT, FAT, network shares): not a video, whatever its name
    says. Known by its magic number, not by the name alone."""
    if not path.name.startswith("._"):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x00\x05\x16\x07"
    except OSError:
        return False  # the decoder reports it


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is not a regular file to read (None: it is one)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symbolic link to nothing (its target does not exist)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (it points back to itself)"
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def suffix_list() -> str:
    """The suffixes for an error message: ``.3g2 .3gp ... .wmv``."""
    return " ".join(VIDEO_SUFFIXES)


def _unreadable(exc: OSError) -> None:
    where = exc.filename or "a folder"
    log.warning("skipped folder %s: cannot list it (%s)", where, exc.strerror or exc)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # skip .git, .cache, ...
        for name in filenames:
            yield Path(dirpath) / name
