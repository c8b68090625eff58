"""Checkpoint key layouts -> ispan's: MMAction2 TSN recognizers and timm/torchvision ResNets.

MMAction2 (0.x and 1.x alike) builds its 2D ResNet from mmcv ``ConvModule``s, so each convolution
and its BatchNorm sit under one name: ``backbone.conv1.conv.weight`` / ``backbone.conv1.bn.*`` for
the stem, ``backbone.layerN.M.convK.{conv,bn}.*`` in the blocks, ``backbone.layerN.0.downsample.
{conv,bn}.*`` for the projection shortcut, and the TSN head's classifier is ``cls_head.fc_cls.*``.
torchvision (and timm, whose ResNets use torchvision's names) writes the same tensors as
``conv1.weight``, ``bn1.*``, ``layerN.M.convK.weight``, ``layerN.M.bnK.*``, ``downsample.0/1.*``
and ``fc.*``. The networks are the same computation (pytorch-style stride on the 3x3
convolution, BatchNorm eps 1e-5), so conversion is renaming only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor

from ispan_cli.errors import ISpanError

FORMATS = ("mmaction2", "timm")
# Blocks per stage and block type -> torchvision depth.
_DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
}
_MM_RULES = (
    (re.compile(r"^conv1\.conv\.(weight)$"), r"conv1.\1"),
    (re.compile(r"^conv1\.bn\.(\w+)$"), r"bn1.\1"),
    (re.compile(r"^(layer\d\.\d+)\.conv(\d)\.conv\.(weight)$"), r"\1.conv\2.\3"),
    (re.compile(r"^(layer\d\.\d+)\.conv(\d)\.bn\.(\w+)$"), r"\1.bn\2.\3"),
    (re.compile(r"^(layer\d\.\d+)\.downsample\.conv\.(weight)$"), r"\1.downsample.0.\2"),
    (re.compile(r"^(layer\d\.\d+)\.downsample\.bn\.(\w+)$"), r"\1.downsample.1.\2"),
)
_TV_KEY = re.compile(
    r"^(conv1\.weight|bn1\.\w+|layer\d\.\d+\.(conv\d\.weight|bn\d\.\w+|downsample\.[01]\.\w+))$"
)
# Keys MMAction2 may carry that hold no weights of the recognizer (1.x data preprocessor buffers).
_MM_IGNORED = ("data_preprocessor.",)


@dataclass(frozen=True)
class Converted:
    """A ResNet classifier in torchvision's names: ``backbone`` without the classifier."""

    backbone: dict[str, Tensor]
    fc_weight: Tensor | None
    fc_bias: Tensor | None
    depth: int
    in_channels: int
    format: str

    @property
    def num_classes(self) -> int | None:
        return None if self.fc_weight is None else int(self.fc_weight.shape[0])


def detect_format(state: dict[str, Tensor]) -> str | None:
    """``mmaction2``, ``timm`` or None, from the key names alone."""
    keys = {k.removeprefix("module.") for k in state}
    if "backbone.conv1.conv.weight" in keys:
        return "mmaction2"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return "timm"
    return None


def convert(state: dict[str, Tensor], fmt: str, source: str) -> Converted:
    """Renames ``state`` (format ``fmt``) to torchvision's keys; every key must map."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    backbone: dict[str, Tensor] = {}
    fc: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if fmt == "mmaction2":
            if key.startswith(_MM_IGNORED):
                continue
            if key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
                fc[key.rpartition(".")[2]] = value
                continue
            new = _mm_name(key.removeprefix("backbone.")) if key.startswith("backbone.") else None
        else:
            if key in ("fc.weight", "fc.bias"):
                fc[key.rpartition(".")[2]] = value
                continue
            new = key if _TV_KEY.match(key) else None
        if new is None:
            unmapped.append(key)
        else:
            backbone[new] = value
    if unmapped or "conv1.weight" not in backbone:
        shown = ", ".join(sorted(unmapped)[:8]) or "(no stem convolution conv1)"
        raise ISpanError(
            f"{source}: {len(unmapped)} key(s) of the {fmt} checkpoint did not map to a ResNet "
            f"TSN: {shown}{' ...' if len(unmapped) > 8 else ''}; known formats: "
            f"{', '.join(FORMATS)} (MMAction2 TSN with a ResNet-18/34/50/101 backbone, timm or "
            "torchvision ResNet)"
        )
    return Converted(
        backbone=backbone,
        fc_weight=fc.get("weight"),
        fc_bias=fc.get("bias"),
        depth=_depth(backbone, source),
        in_channels=int(backbone["conv1.weight"].shape[1]),
        format=fmt,
    )


def _mm_name(key: str) -> str | None:
    for pattern, replacement in _MM_RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def _depth(backbone: dict[str, Tensor], source: str) -> int:
    blocks = []
    for stage in range(1, 5):
        indices = {int(k.split(".")[1]) for k in backbone if k.startswith(f"layer{stage}.")}
        blocks.append(max(indices) + 1 if indices else 0)
    bottleneck = any(".conv3." in k for k in backbone)
    depth = _DEPTHS.get((tuple(blocks), bottleneck))
    if depth is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise ISpanError(
            f"{source}: a ResNet with {blocks} {kind} blocks per stage is not one ispan builds "
            "(ResNet-18/34/50/101)"
        )
    return depth
