"""``--pretrained hub:timm/resnet50.a1_in1k``: ImageNet backbone weights from a Hub repo.

timm's ResNet repos hold ``model.safetensors`` in torchvision's key names, which the backbone
loader (``ispan_cli.nn.backbones.load_pretrained``) reads as they are; this fetches the file into
the Hub cache (never a pickle) and checks its layout, so a wrong repo fails before training.
"""

from __future__ import annotations

from pathlib import Path

from ispan_cli.errors import ISpanError

HUB_PREFIX = "hub:"


def resolve_pretrained(value: str | None, timeout: float | None = None) -> str | None:
    """A local path for ``hub:org/name[@revision]``; any other value unchanged."""
    if value is None or not str(value).startswith(HUB_PREFIX):
        return value
    from ispan_cli.hub import fetch_repo_files

    repo = str(value).removeprefix(HUB_PREFIX)
    folder, repo_id, commit = fetch_repo_files(repo, timeout=timeout)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ISpanError(
            f"--pretrained {value}: Hub repo {repo_id}@{commit[:12]} has no model.safetensors"
        )
    _check_layout(weights, value)
    return str(weights)


def _check_layout(weights: Path, value: str) -> None:
    from safetensors import safe_open

    from ispan_cli.importers.layouts import detect_format

    with safe_open(str(weights), "pt") as fh:
        names = {k: None for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    if detect_format(names) != "timm":
        raise ISpanError(
            f"--pretrained {value}: model.safetensors is not a ResNet in timm/torchvision key "
            f"names (first keys: {', '.join(sorted(names)[:5])}); use a timm ResNet repo such "
            "as timm/resnet50.a1_in1k"
        )
