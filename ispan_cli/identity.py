"""Which weights produced a result: one record, whatever loaded them (zoo, folder, Hub, ONNX file,
registry architecture). Torch-free, so the Hub client, the runtimes and the ONNX format share it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelIdentity:
    """Printed with every record; stored in exported ONNX files."""

    id: str  # zoo name, folder path, Hub repo id, .onnx path or registry architecture
    revision: str | None  # Hub commit, None for local folders
    sha256: str  # of model.safetensors (or model.onnx); "" for random weights
    source: str  # "zoo", "folder", "hub", "file", "registry"

    @property
    def display(self) -> str:
        """``org/name@<12-char commit>`` for Hub models, else the id."""
        return f"{self.id}@{self.revision[:12]}" if self.revision else self.id

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "revision": self.revision,
            "sha256": self.sha256,
            "source": self.source,
        }
