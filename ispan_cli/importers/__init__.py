"""Importing published checkpoints (MMAction2 TSN, timm ResNets) as ispan model folders.

``import_model`` writes a folder every command loads unchanged; ``resolve_pretrained`` turns
``--pretrained hub:org/name`` into a local safetensors file for the backbone loader. Reading a
``.pth`` never runs code from it (``safe_pickle``).
"""

from ispan_cli.importers.pretrained import resolve_pretrained
from ispan_cli.importers.run import ImportOptions, ImportResult, import_model

__all__ = ["ImportOptions", "ImportResult", "import_model", "resolve_pretrained"]
