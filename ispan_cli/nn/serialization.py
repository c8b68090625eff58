"""Model folders: ``config.json`` + ``model.safetensors``, the same layout as a Hub model repo.

``config.json`` has a ``model`` section (ModelConfig, labels included) plus room for sections that
other parts of ispan add (preprocessing, metrics). Weights are safetensors only: loading never
unpickles anything, and every key and shape must match the config's architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ispan_cli import __version__
from ispan_cli.errors import ISpanError
from ispan_cli.nn.config import ModelConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "ispan"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def save_model(model, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

    extra: further top-level sections of config.json (e.g. ``preprocessing``, ``metrics``).
    Each file is written to a temporary name and renamed, so a crash never leaves half a file.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ispan_version": __version__,
        "model": model.config.to_dict(),
        **(extra or {}),
    }
    with _atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with _atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig of a model folder and the whole config.json document."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ISpanError(f"model folder {directory} does not exist or is not a folder")
    if not path.is_file():
        raise ISpanError(f"{directory} has no {CONFIG_FILE}; it is not an ispan model folder")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ISpanError(f"{path} is not valid JSON ({exc}); restore it from the original") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "model" not in doc:
        raise ISpanError(f'{path} is not an ispan config (expected "format": "{FORMAT}")')
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise ISpanError(
            f"{path} has format_version {doc['format_version']}, newer than this ispan "
            f"understands ({FORMAT_VERSION}); upgrade ispan"
        )
    return ModelConfig.from_dict(doc["model"]), doc


def load_model(directory: str | Path, device: str = "cpu"):
    """Builds the model described by ``config.json`` and loads ``model.safetensors`` strictly.

    Returns the model in eval mode on ``device``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ispan_cli.nn.model import ISTPAN

    directory = Path(directory)
    config, _ = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = (
            f"; found {', '.join(pickles)}, but pickle files are refused because loading them can "
            "run arbitrary code: convert them to safetensors"
            if pickles
            else ""
        )
        raise ISpanError(f"{directory} has no {WEIGHTS_FILE}{hint}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ISpanError(f"{weights} is not a readable safetensors file ({exc})") from exc
    model = ISTPAN(config)
    check_state_dict(model, state, source=str(weights))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def check_state_dict(model, state: dict, source: str) -> None:
    """Raises ISpanError naming missing, unexpected and mis-shaped keys."""
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise ISpanError(
            f"{source} does not match its config.json ({'; '.join(problems)}); the weights and "
            "config must come from the same save_model call"
        )


def state_dict_problems(expected: dict, state: dict) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected``, described."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"wrong shapes: {wrong[:3]}")
    return problems


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _atomic_path:
    """Context manager yielding a temporary path beside ``target``; renamed onto it on success."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.")
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            # mkstemp's file is 0600 (and writers may recreate it): give the final file the
            # permissions any new file gets under the process umask
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
