"""The flow stream's model side: the variant of a registered model that takes stacked optical
flow, and TSN's cross-modality pre-training of its first convolution.

A flow model is the RGB model with three changes (TSN, Wang et al. 2016, section 3.2): the
first convolution takes 2L channels (L flows, x and y interleaved), its weights start from the
RGB ones averaged over the colour channels and replicated 2L times, and the dropout before the
classifier is 0.7 (flow overfits more). The attention layer is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ispan_cli.errors import ISpanError

if TYPE_CHECKING:  # the registry and config read this module without importing torch
    from torch import Tensor

MODALITIES = ("rgb", "flow")
FLOW_DROPOUT = 0.7  # TSN's flow stream
DEFAULT_LENGTH = 5  # L, TSN's new_length for flow; 2L = 10 input channels
MAX_LENGTH = 64  # a bound on what a flag may ask for (TSN uses 5, some works 10)

# The state dict key (in the backbone's ``net``) of each backbone's first convolution.
FIRST_CONV = {
    "resnet18": "conv1.weight",
    "resnet34": "conv1.weight",
    "resnet50": "conv1.weight",
    "resnet101": "conv1.weight",
    "googlenet": "conv1.conv.weight",
    "tiny": "stem.0.weight",
}


def modality_overrides(modality: str, length: int = DEFAULT_LENGTH) -> dict[str, Any]:
    """ModelConfig fields that turn a registered variant into its ``modality`` stream."""
    if modality not in MODALITIES:
        raise ISpanError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    if modality == "rgb":
        return {}
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_LENGTH:
        raise ISpanError(
            f"flow length L must be a whole number 1..{MAX_LENGTH} (TSN uses 5), got {length!r}"
        )
    return {"in_channels": 2 * length, "dropout": FLOW_DROPOUT}


def modality_of(in_channels: int) -> str:
    """``rgb`` for 3 input channels, ``flow`` for 2L."""
    return "rgb" if in_channels == 3 else "flow"


def cross_modality(rgb_weight: Tensor, in_channels: int) -> Tensor:
    """TSN's cross-modality pre-training: (O, 3, k, k) RGB weights -> (O, in_channels, k, k),
    the mean over the colour channels replicated on every flow channel."""
    if rgb_weight.dim() != 4 or rgb_weight.shape[1] != 3:
        raise ISpanError(
            f"cross-modality init needs RGB convolution weights (O, 3, k, k), got "
            f"{tuple(rgb_weight.shape)}"
        )
    mean = rgb_weight.mean(dim=1, keepdim=True)  # (O, 3, k, k) -> (O, 1, k, k)
    return mean.expand(-1, in_channels, -1, -1).contiguous()  # (O, 1, k, k) -> (O, 2L, k, k)


def adapt_first_conv(backbone_name: str, state: dict[str, Tensor], in_channels: int) -> dict:
    """``state`` (a backbone state dict) with an RGB first convolution converted for
    ``in_channels`` inputs by :func:`cross_modality`; unchanged when it already fits."""
    key = FIRST_CONV[backbone_name]
    weight = state.get(key)
    if in_channels == 3 or weight is None or weight.dim() != 4 or weight.shape[1] != 3:
        return state
    return {**state, key: cross_modality(weight, in_channels)}
