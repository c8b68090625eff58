"""Named model variants, registered once and built through ``create_model``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError
from ispan_cli.nn.config import ModelConfig
from ispan_cli.nn.flow import DEFAULT_LENGTH, modality_overrides


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    config: ModelConfig


_VARIANTS: dict[str, Variant] = {}


def register(name: str, description: str, **fields: Any) -> None:
    if name in _VARIANTS:
        raise ValueError(f"model {name} registered twice")
    _VARIANTS[name] = Variant(name, description, ModelConfig(**fields))


def list_models() -> list[str]:
    """Names of the registered variants, sorted."""
    return sorted(_VARIANTS)


def get_variant(name: str) -> Variant:
    if name not in _VARIANTS:
        raise ISpanError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _VARIANTS[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    pretrained: str | Path = "none",
    modality: str = "rgb",
    flow_length: int = DEFAULT_LENGTH,
    **overrides: Any,
):
    """Builds a registered variant; ``overrides`` are ModelConfig fields (e.g. ``temporal``).

    pretrained: backbone weights, ``none``, ``imagenet`` or a path to a local state dict.
    modality: ``rgb``, or ``flow``: the variant's flow stream (``ispan_cli.nn.flow``), whose
        first convolution takes ``2 * flow_length`` channels and starts from the RGB weights by
        cross-modality pre-training, with dropout 0.7 unless ``overrides`` set it.
    """
    from ispan_cli.nn.model import ISTPAN

    config = get_variant(name).config
    overrides = {**modality_overrides(modality, flow_length), **overrides}
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if overrides.get("labels") and "num_classes" not in overrides:
        overrides["num_classes"] = len(overrides["labels"])
    return ISTPAN(config.replace(**overrides), pretrained=pretrained)


_R = {"pyramid": ("layer2", "layer3", "layer4"), "attention_layer": "layer4", "d": 49}
_TSN = {"arch": "tsn", "pyramid": (), "attention_layer": None}

register(
    "istpan_tiny",
    "ISTPAN on a tiny CNN at 112 px: tests, the demo, CPU smoke runs",
    backbone="tiny",
    input_size=112,
    dropout=0.2,
    **_R,
)
register("istpan_resnet18", "ISTPAN on ResNet-18, pyramid layer2-4", backbone="resnet18", **_R)
register("istpan_resnet34", "ISTPAN on ResNet-34, pyramid layer2-4", backbone="resnet34", **_R)
register(
    "istpan_resnet50",
    "ISTPAN on ResNet-50, pyramid layer2-4 (the paper-like default)",
    backbone="resnet50",
    **_R,
)
register("istpan_resnet101", "ISTPAN on ResNet-101, pyramid layer2-4", backbone="resnet101", **_R)
register(
    "istpan_inception",
    "ISTPAN on GoogLeNet (Inception with BatchNorm), pyramid inception3-5",
    backbone="googlenet",
    pyramid=("inception3", "inception4", "inception5"),
    attention_layer="inception5",
    d=49,
)
register(
    "tsn_tiny",
    "TSN baseline (no attention) on the tiny CNN",
    backbone="tiny",
    input_size=112,
    dropout=0.2,
    **_TSN,
)
register("tsn_resnet18", "TSN baseline (no attention) on ResNet-18", backbone="resnet18", **_TSN)
register("tsn_resnet50", "TSN baseline (no attention) on ResNet-50", backbone="resnet50", **_TSN)
