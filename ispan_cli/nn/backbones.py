"""2D CNN backbones from torchvision, run stage by stage so the pyramid can tap feature maps.

The torchvision network is kept whole as ``self.net`` (classifier removed), so its state dict keys
are torchvision's own and an ImageNet or local state dict loads without renaming. timm's ResNets
(``timm/resnet50.a1_in1k``) use the same key names, so their safetensors load here as they are;
MMAction2's keys are renamed by ``ispan_cli.importers`` before they reach this module.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ispan_cli.errors import ISpanError
from ispan_cli.nn.flow import adapt_first_conv
from ispan_cli.nn.specs import BACKBONES, BackboneSpec
from ispan_cli.nn.state_dict import state_dict_problems

# Attribute names of ``net`` that make up each stage, in order.
_RESNET_LAYOUT = {
    "stem": ("conv1", "bn1", "relu", "maxpool"),
    "layer1": ("layer1",),
    "layer2": ("layer2",),
    "layer3": ("layer3",),
    "layer4": ("layer4",),
}
_LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "resnet18": _RESNET_LAYOUT,
    "resnet34": _RESNET_LAYOUT,
    "resnet50": _RESNET_LAYOUT,
    "resnet101": _RESNET_LAYOUT,
    "googlenet": {
        "stem": ("conv1", "maxpool1", "conv2", "conv3", "maxpool2"),
        "inception3": ("inception3a", "inception3b"),
        "inception4": (
            "maxpool3",
            "inception4a",
            "inception4b",
            "inception4c",
            "inception4d",
            "inception4e",
        ),
        "inception5": ("maxpool4", "inception5a", "inception5b"),
    },
    "tiny": _RESNET_LAYOUT | {"stem": ("stem",)},
}
# Keys of a torchvision checkpoint that belong to its ImageNet classifier, not to the features.
_CLASSIFIER_PREFIXES = ("fc.", "aux1.", "aux2.")
# `--pretrained hub:timm/resnet50.a1_in1k`: backbone weights from a Hub repo's model.safetensors.
HUB_PREFIX = "hub:"


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TinyNet(nn.Module):
    """A very small CNN with ResNet's stage names: a forward pass takes milliseconds on a CPU."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        c = BACKBONES["tiny"].channels
        self.stem = _conv_bn_relu(in_channels, c[0], 2)
        self.layer1 = _conv_bn_relu(c[0], c[1], 1)
        self.layer2 = nn.Sequential(_conv_bn_relu(c[1], c[2], 2), _conv_bn_relu(c[2], c[2], 1))
        self.layer3 = nn.Sequential(_conv_bn_relu(c[2], c[3], 2), _conv_bn_relu(c[3], c[3], 1))
        self.layer4 = nn.Sequential(_conv_bn_relu(c[3], c[4], 2), _conv_bn_relu(c[4], c[4], 1))


def _build_net(name: str, in_channels: int = 3) -> nn.Module:
    if name == "tiny":
        return TinyNet(in_channels)
    import torchvision

    if name == "googlenet":
        # aux heads are training-only classifiers we do not use; init_weights keeps torchvision's
        # default initialisation (and silences its warning).
        net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        net.dropout = nn.Identity()
    else:
        net = getattr(torchvision.models, name)(weights=None)
    if in_channels != 3:  # e.g. a flow stream: 2L channels, the rest of the network unchanged
        first = net.conv1.conv if name == "googlenet" else net.conv1
        replacement = nn.Conv2d(
            in_channels, first.out_channels, first.kernel_size, first.stride, first.padding,
            bias=False,
        )  # fmt: skip
        if name == "googlenet":
            net.conv1.conv = replacement
        else:
            net.conv1 = replacement
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    return net


class Backbone(nn.Module):
    """A torchvision CNN run as named stages: ``run(x, start, stop)`` returns each stage output.

    pretrained: ``"none"`` (random init), ``"imagenet"`` (torchvision's weights API), or a path to a
    local state dict in torchvision's (= timm's) key layout (``.safetensors``, or ``.pt``/``.pth``
    read with ``weights_only=True``). ``hub:org/name`` values are fetched to such a path by
    ``ispan_cli.importers.resolve_pretrained`` before a model is built.
    in_channels: channels of each input frame (3 for RGB, 2L for L stacked flow fields); only
        the first convolution depends on it. RGB weights (ImageNet or a path) load into a flow
        backbone by cross-modality pre-training (``ispan_cli.nn.flow.cross_modality``); with
        ``none`` the first convolution keeps PyTorch's random init for its 2L inputs.
    """

    def __init__(self, name: str, pretrained: str | Path = "none", in_channels: int = 3) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ISpanError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
        self.name = name
        self.spec: BackboneSpec = BACKBONES[name]
        self.in_channels = in_channels
        self.net = _build_net(name, in_channels)
        self._layout = _LAYOUTS[name]
        load_pretrained(self, pretrained)

    def run(self, x: Tensor, start: int = 0, stop: int | None = None) -> list[Tensor]:
        """Runs stages ``start..stop-1`` on x (N, C, H, W); returns each stage's output in order."""
        outs = []
        for stage in self.spec.stages[start:stop]:
            if stage == "stem" and self.name == "googlenet" and self.in_channels == 3:
                x = _googlenet_transform_input(x)
            for attr in self._layout[stage]:
                x = getattr(self.net, attr)(x)
            outs.append(x)
        return outs


def _googlenet_transform_input(x: Tensor) -> Tensor:
    # torchvision's GoogLeNet weights expect inputs scaled to [-1, 1]; our preprocessing is the
    # usual ImageNet mean/std, so convert exactly as torchvision does with transform_input=True.
    ch0 = x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    ch1 = x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    ch2 = x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    return torch.cat((ch0, ch1, ch2), 1)


def load_pretrained(backbone: Backbone, pretrained: str | Path) -> None:
    """Loads ImageNet or local weights into ``backbone.net``; every feature key must match."""
    if pretrained in (None, "", "none"):
        return
    if str(pretrained).startswith(HUB_PREFIX):
        raise ISpanError(
            f"--pretrained {pretrained}: Hub weights are fetched before the model is built "
            "(ispan_cli.importers.resolve_pretrained); pass the downloaded file's path here"
        )
    if pretrained == "imagenet":
        state, source = _imagenet_state_dict(backbone), f"ImageNet weights for {backbone.name}"
    else:
        state, source = read_state_dict(Path(pretrained)), str(pretrained)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    # a flow backbone from RGB weights: TSN's cross-modality pre-training of the first conv
    state = adapt_first_conv(backbone.name, state, backbone.in_channels)
    problems = state_dict_problems(backbone.net.state_dict(), state)
    if problems:
        raise ISpanError(
            f"{source} does not fit backbone {backbone.name}: {'; '.join(problems)}. Pass a "
            f"torchvision {backbone.name} state dict"
        )
    backbone.net.load_state_dict(state, strict=True)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Reads a state dict without executing pickled code (safetensors, or weights_only=True)."""
    if not path.is_file():
        raise ISpanError(
            f"pretrained weights {path} not found; pass imagenet, none, or a path to a state dict"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ISpanError(
            f"could not read {path} as a state dict ({type(exc).__name__}: {exc}); use a "
            ".safetensors file or a .pt/.pth holding plain tensors"
        ) from exc
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ISpanError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def _imagenet_state_dict(backbone: Backbone) -> dict[str, Tensor]:
    member = backbone.spec.imagenet
    if member is None:
        raise ISpanError(
            f"backbone {backbone.name} has no ImageNet weights; use --pretrained none or a path"
        )
    import torchvision

    enum_name, _, value = member.partition(".")
    weights = getattr(getattr(torchvision.models, enum_name), value)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch on a partial download
        raise ISpanError(
            f"could not download {weights.url} ({type(exc).__name__}: {exc}); pass --pretrained "
            "PATH to a local state dict"
        ) from exc
