"""The local model zoo: ``models/<name>/`` folders laid out like Hub model repos.

Reads only JSON, so listing the zoo does not import torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ZOO_ENV = "ISPAN_MODELS_DIR"
# The model every command uses without --model (a folder in models/; also `make demo`'s).
DEFAULT_MODEL = "istpan-tiny-synthetic"


def zoo_dir() -> Path:
    """``$ISPAN_MODELS_DIR`` if set; else the zoo an installed wheel carries
    (``ispan_cli/_zoo``, mapped from ``models/`` by setup.py); else, in a checkout or an
    editable install, the ``models/`` folder beside the package."""
    env = os.environ.get(ZOO_ENV)
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    bundled = package / "_zoo"
    return bundled if bundled.is_dir() else package.parent / "models"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    path: Path
    arch: str
    backbone: str
    num_classes: int
    problem: str | None  # why the folder cannot be loaded, None when it looks complete


def list_zoo(directory: Path | None = None) -> list[ZooEntry]:
    """Every sub-folder of the zoo that holds a config.json, sorted by name."""
    root = directory or zoo_dir()
    if not root.is_dir():
        return []
    entries = []
    for folder in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
        problem = None
        model: dict = {}
        try:
            model = json.loads((folder / "config.json").read_text()).get("model", {})
        except (OSError, ValueError, AttributeError) as exc:
            problem = f"unreadable config.json ({exc})"
        if problem is None and not (folder / "model.safetensors").is_file():
            problem = "no model.safetensors"
        entries.append(
            ZooEntry(
                name=folder.name,
                path=folder,
                arch=str(model.get("arch", "?")),
                backbone=str(model.get("backbone", "?")),
                num_classes=int(model.get("num_classes", 0) or 0),
                problem=problem,
            )
        )
    return entries


def find_local_model(name: str) -> Path | None:
    """A model folder named ``name``: a path to a folder, or a folder in the zoo."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    candidate = zoo_dir() / name
    return candidate if candidate.is_dir() else None
