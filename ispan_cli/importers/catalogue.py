"""Published checkpoints known by a short name (``mmaction2:tsn-r50-kinetics400``), as data.

``catalogue.json`` beside this module holds, per name, the download URL, the label set and K,
the peer's crops, and the accuracy the peer reports with a link to the page that says so (the
peer's number, not one ispan measured). Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError

_FILE = Path(__file__).resolve().parent / "catalogue.json"


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    description: str
    url: str
    format: str
    labels: str
    num_classes: int
    num_segments: int
    resize: int
    crop: int
    reported: dict[str, Any]
    modality: str = "rgb"
    extra: dict[str, Any] = field(default_factory=dict)


def catalogue() -> dict[str, CatalogueEntry]:
    """Every entry by name, in the file's order."""
    doc = json.loads(_FILE.read_text(encoding="utf-8"))
    return {name: CatalogueEntry(name=name, **fields) for name, fields in doc["entries"].items()}


def is_catalogue_name(spec: str) -> bool:
    return spec.startswith("mmaction2:")


def catalogue_entry(name: str) -> CatalogueEntry:
    entries = catalogue()
    if name not in entries:
        raise ISpanError(f"no catalogue entry {name!r}; known: {', '.join(entries)}")
    return entries[name]
