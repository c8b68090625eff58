"""Output files and run folders: checked before any work, locked while written, never an input.

The policy (README, "Outputs"): every output file is written to a temporary file beside it and
renamed when complete (``ispan_cli.model_folder.atomic_path``), so a failed or killed run leaves
the previous file as it was; one process at a time writes an output file or a run folder (an
exclusive lock next to it names the holder); an output that is one of the inputs is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.terminal import visible

LOCK_SUFFIX = ".lock"


def check_output_file(
    path: str | Path, inputs: Iterable[str | Path] = (), option: str = "--output"
) -> Path:
    """``path`` as a Path if a file can be written there; else a one-line error saying what to
    change. Checked before the model loads, so a bad path costs nothing."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {visible(path)} is a folder; give a file name inside it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise UsageError(
            f"{option} {visible(path)}: the folder {visible(folder)} does not exist; create it "
            "or choose another path"
        )
    if not folder.is_dir():
        raise UsageError(f"{option} {visible(path)}: {visible(folder)} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {visible(path)}: the folder {visible(folder)} is not writable by this user"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {visible(path)} exists and is read-only; choose another path")
    for item in inputs:
        if _same_file(path, Path(item)):
            raise UsageError(
                f"{option} {visible(path)} is also an input: writing it would destroy the input; "
                "choose another output path"
            )
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def command_line() -> str:
    """The command as the user typed it (``ispan`` and its arguments, shell-quoted), for the
    records of a run: train's settings, evaluate's metrics.json, the report."""
    return "ispan " + shlex.join(sys.argv[1:])


def _holder() -> str:
    command = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))
    if len(command) > 100:
        command = command[:99] + "…"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return f"pid {os.getpid()} on {socket.gethostname()} since {since}: {command}"


@contextlib.contextmanager
def exclusive(target: str | Path, option: str = "--output") -> Iterator[None]:
    """Holds an exclusive lock on ``target`` (a file or a run folder) for the block.

    The lock is a file beside a target file (``.name.lock``) or inside a target folder
    (``.ispan.lock``), locked with ``flock``: the kernel releases it when the process ends,
    however it ends, so a killed run never leaves a stale lock. A second writer gets a one-line
    error naming the holder.
    """
    import fcntl

    target = Path(target)
    lock = target / f".ispan{LOCK_SUFFIX}" if target.is_dir() else (
        target.with_name(f".{target.name}{LOCK_SUFFIX}")
    )  # fmt: skip
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ISpanError(
                f"{visible(target)} is being written by another ispan process ({visible(holder)});"
                f" wait for it to finish, or choose another {option}"
            ) from None
        # the holder before us may have removed the lock file after we opened it: lock the file
        # that is there now, not an unlinked one
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def is_lock_file(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(LOCK_SUFFIX)
