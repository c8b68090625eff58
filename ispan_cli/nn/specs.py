"""Backbone facts as plain data (no torch import): stage names, channels and strides.

The configuration validates pyramid and attention layers against these tables without building a
network, and ``ispan models list`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    stages: tuple[str, ...]  # in execution order; the last one feeds the classifier
    channels: tuple[int, ...]  # output channels of each stage
    strides: tuple[int, ...]  # output stride of each stage w.r.t. the input frame
    imagenet: str | None  # torchvision weights enum member, None when there is none
    note: str

    def channels_of(self, stage: str) -> int:
        return self.channels[self.stages.index(stage)]

    def stride_of(self, stage: str) -> int:
        return self.strides[self.stages.index(stage)]


_RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
_RESNET_STRIDES = (4, 4, 8, 16, 32)

BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        _RESNET_STAGES,
        (64, 64, 128, 256, 512),
        _RESNET_STRIDES,
        "ResNet18_Weights.IMAGENET1K_V1",
        "torchvision ResNet-18",
    ),
    "resnet34": BackboneSpec(
        _RESNET_STAGES,
        (64, 64, 128, 256, 512),
        _RESNET_STRIDES,
        "ResNet34_Weights.IMAGENET1K_V1",
        "torchvision ResNet-34",
    ),
    "resnet50": BackboneSpec(
        _RESNET_STAGES,
        (64, 256, 512, 1024, 2048),
        _RESNET_STRIDES,
        "ResNet50_Weights.IMAGENET1K_V2",
        "torchvision ResNet-50",
    ),
    "resnet101": BackboneSpec(
        _RESNET_STAGES,
        (64, 256, 512, 1024, 2048),
        _RESNET_STRIDES,
        "ResNet101_Weights.IMAGENET1K_V2",
        "torchvision ResNet-101",
    ),
    # torchvision's GoogLeNet has BatchNorm after every convolution: the closest available network
    # to the BN-Inception of TSN-era papers.
    "googlenet": BackboneSpec(
        ("stem", "inception3", "inception4", "inception5"),
        (192, 480, 832, 1024),
        (8, 8, 16, 32),
        "GoogLeNet_Weights.IMAGENET1K_V1",
        "torchvision GoogLeNet (Inception v1 with BatchNorm)",
    ),
    # A few-thousand-parameter CNN shaped like a ResNet (same stage names) for tests and the demo.
    "tiny": BackboneSpec(
        _RESNET_STAGES,
        (8, 16, 32, 64, 128),
        (2, 2, 4, 8, 16),
        None,
        "5-stage plain CNN, 0.3M parameters",
    ),
}
