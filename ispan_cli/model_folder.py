"""Facts about model folders and files that need no torch: names, the format version, the
refusal of pickles, hashing, and writing a file so that a crash never leaves half of it.

Imports nothing else of ispan, so the Hub, the ONNX path and the zoo listing can use it without
loading PyTorch. A model folder is laid out like a Hugging Face Hub model repo:
``config.json`` + ``model.safetensors`` + ``README.md`` (the model card).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
FORMAT = "ispan"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def pickle_hint(names: Iterable[str]) -> str:
    """The end of a "has no model.safetensors" message when only pickle weights are there."""
    pickles = sorted(names)
    if not pickles:
        return ""
    return (
        f"; it has {', '.join(pickles)}, but pickle weights are refused because loading them "
        "can run arbitrary code: convert them to safetensors"
    )


def pickles_in(folder: Path) -> list[str]:
    """Names of the pickle weight files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (a model's identity in every record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yields a temporary path in ``target``'s folder; on success it is synced to disk, given
    the permissions a new file gets under the umask, and renamed onto ``target``. On failure
    (or a kill) ``target`` keeps its previous content and the temporary file is removed.

    For writers that want a path (safetensors, ONNX, torch.save by name).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the real suffix last: writers that choose a format by extension (video, NumPy) keep it
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have replaced the file: sync what is there
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
        os.replace(tmp, target)
        _sync_folder(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open`` for writing, atomically (see :func:`atomic_path`): ``with atomic_open(p) as f``."""
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()


def atomic_write_text(target: str | Path, text: str) -> Path:
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(target)


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def _sync_folder(folder: Path) -> None:
    """Makes the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
