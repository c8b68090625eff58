"""Resumable training state: one file per checkpoint, written atomically, loaded with
``torch.load(weights_only=True)`` (tensors and plain containers only; nothing is unpickled
that could run code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_open

CHECKPOINTS = "checkpoints"  # the run folder's sub-folder holding them
LAST = "last.pt"
BEST = "best.pt"


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Writes ``state`` to a temporary file beside ``path``, fsyncs it, then renames it: a kill
    at any moment leaves either the old checkpoint or the new one, never half a file."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """The state saved by :func:`save_state`, on the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise ISpanError(
            f"{path} is not a readable ispan checkpoint ({str(exc).splitlines()[0]}); delete it "
            "to start over"
        ) from exc


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop uses (dropout and friends), as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
