"""ModelConfig: every hyper-parameter of a model, frozen, with a JSON round trip.

The model takes the config whole (``ISTPAN(ModelConfig(...))``) and the config travels with the
weights in ``config.json``. The choices the paper (arXiv:1808.01106) leaves open, marked [ours]
and listed in the README's "The model", are fields here, so every one can be switched for an
ablation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ispan_cli.errors import ISpanError
from ispan_cli.limits import MAX_CLASSES, MAX_D, MAX_IN_CHANNELS, MAX_INPUT_SIZE, MAX_SEGMENTS
from ispan_cli.nn.specs import BACKBONES

ARCHS = ("istpan", "tsn")
RESAMPLE = ("avg", "max", "bilinear")
FUSIONS = ("sum", "mean", "max", "weighted")
TEMPORAL = ("stack", "per_frame")


# The field types ModelConfig uses (as written in the annotations) and how each is checked.
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "tuple[str, ...]": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v),
}


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of an ISTPAN (or plain TSN) video classifier.

    arch: ``istpan`` (pyramid attention) or ``tsn`` (same backbone, no attention: the baseline).
    backbone: a key of ``ispan_cli.nn.specs.BACKBONES``.
    pyramid: backbone stages whose feature maps feed the attention, shallow to deep; the last one
        is ``attention_layer`` (f_i in the paper), where the layer sits and whose size the others
        are resampled to.
    d: rows of the attention matrix A. The paper uses H_i*W_i (49 for 7x7) so that the output
        can be reshaped to the input's spatial size; any d works when the layer is the last stage.
    resample: operator R bringing earlier maps to H_i x W_i [ours]: adaptive avg or max pooling, or
        bilinear interpolation.
    fusion: F combining the per-level scores before the softmax [ours]: sum, mean, max, or a sum
        with one learned weight per level.
    temporal: ``stack`` puts the K segments' positions in one attention (one map per video);
        ``per_frame`` attends within each frame and averages the K segment scores (TSN consensus).
    residual: add f_i to the attention output [ours; the paper's figure has none].
    output_norm: [ours] divide M = A X by the mean row sum of A, so the weights with which the
        layer pools positions sum to 1 however peaked A is. Off is the paper's M = A X exactly,
        whose size shrinks as rows sharpen (an L2-normalised row sums to sqrt(P) when flat, to 1
        on one position); the classifier then pays for every focused row, and attention learns to
        avoid small objects (BENCHMARKS.md, "Where the attention goes"). Model folders written
        before this field existed load with it off, as they were trained.
    interaction_loss / diversity_loss: switches for the auxiliary losses; beta / gamma weigh them.
    loss_normalize: [ours] L2-normalise the rows of X_i inside the interaction loss and divide each
        loss term by its element count, so both losses are bounded (see ispan_cli/nn/losses.py).
    input_size: side of the square crop the model is trained and evaluated at.
    in_channels: channels of each input frame: 3 for RGB; 2L for a stack of L optical-flow
        fields (x and y interleaved, as TSN's flow stream takes them, e.g. 10 for L=5).
    num_segments: K used by default at inference; any K works with the same parameters.
    labels: class names, index-aligned with the logits; empty or exactly num_classes long.
    """

    arch: str = "istpan"
    backbone: str = "resnet50"
    pyramid: tuple[str, ...] = ("layer2", "layer3", "layer4")
    attention_layer: str | None = "layer4"
    d: int = 49
    resample: str = "avg"
    fusion: str = "sum"
    temporal: str = "stack"
    residual: bool = False
    output_norm: bool = True
    dropout: float = 0.5
    num_classes: int = 101
    interaction_loss: bool = True
    diversity_loss: bool = True
    beta: float = 0.1
    gamma: float = 0.1
    loss_normalize: bool = True
    input_size: int = 224
    in_channels: int = 3
    num_segments: int = 8
    labels: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and frozen-friendly.
        for name in ("pyramid", "labels"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._check_types()
        _choice("arch", self.arch, ARCHS)
        _choice("backbone", self.backbone, tuple(BACKBONES))
        _choice("resample", self.resample, RESAMPLE)
        _choice("fusion", self.fusion, FUSIONS)
        _choice("temporal", self.temporal, TEMPORAL)
        spec = BACKBONES[self.backbone]
        if self.arch == "istpan":
            if not self.pyramid:
                raise ISpanError("pyramid is empty; istpan needs at least the attention layer")
            for stage in self.pyramid:
                _choice(f"pyramid layer of {self.backbone}", stage, spec.stages)
            if self.attention_layer != self.pyramid[-1]:
                raise ISpanError(
                    f"attention_layer {self.attention_layer!r} must be the last (deepest) pyramid "
                    f"layer; pyramid is {list(self.pyramid)}"
                )
            order = [spec.stages.index(s) for s in self.pyramid]
            if order != sorted(set(order)):
                raise ISpanError(
                    f"pyramid layers must be distinct and ordered shallow to deep, got "
                    f"{list(self.pyramid)}; {self.backbone} stages are {list(spec.stages)}"
                )
            _bounded("d", self.d, 1, MAX_D, "the attention layer's H*W, 49 at 224 pixels")
            last = self.attention_layer == spec.stages[-1]
            side = self.input_size // spec.stride_of(self.attention_layer)
            if (not last or self.residual) and self.d != side * side:
                raise ISpanError(
                    f"d={self.d} but {self.attention_layer} is {side}x{side} at input_size "
                    f"{self.input_size}; with later stages or residual=True the output is reshaped "
                    f"to the input's spatial size, so set d={side * side}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ISpanError(f"dropout must be in [0, 1), got {self.dropout}")
        _bounded("num_classes", self.num_classes, 1, MAX_CLASSES, "one per label")
        if self.labels and len(self.labels) != self.num_classes:
            raise ISpanError(
                f"{len(self.labels)} labels for num_classes={self.num_classes}; give one label "
                "per class in logit order"
            )
        if self.input_size > MAX_INPUT_SIZE:
            raise ISpanError(
                f"config field input_size must be at most {MAX_INPUT_SIZE} pixels, got "
                f"{self.input_size}"
            )
        if self.input_size < spec.strides[-1]:
            raise ISpanError(
                f"input_size {self.input_size} is smaller than {self.backbone}'s total stride "
                f"{spec.strides[-1]}"
            )
        _bounded("in_channels", self.in_channels, 1, MAX_IN_CHANNELS, "3 for RGB, 2L for L flows")
        _bounded("num_segments", self.num_segments, 1, MAX_SEGMENTS, "K, 8 in the paper")
        if self.beta < 0 or self.gamma < 0:
            raise ISpanError("loss weights beta and gamma must be non-negative")

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            check = _TYPE_CHECKS.get(str(f.type))
            if check is None:  # a field added with a type nobody taught the check
                raise ISpanError(
                    f"config field {f.name} has type {f.type}, which the config check does not "
                    f"know (it knows {', '.join(_TYPE_CHECKS)}); add it to _TYPE_CHECKS in "
                    "ispan_cli/nn/config.py"
                )
            if not check(value):
                raise ISpanError(f"config field {f.name} should be {f.type}, got {value!r}")
            if str(f.type) == "float":
                if not math.isfinite(value):  # NaN passes every comparison below
                    raise ISpanError(f"config field {f.name} must be a finite number, got {value}")
                object.__setattr__(self, f.name, float(value))

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ISpanError(
                f'the "model" section of the config must be an object of fields, got {data!r:.80}'
            )
        valid = field_names()
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ISpanError(
                f"unknown model config field(s) {unknown}; valid fields: {', '.join(valid)} "
                "(was this config written by a newer ispan?)"
            )
        if "output_norm" not in data:  # written before the field existed: trained without it
            data = {**data, "output_norm": False}
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelConfig:
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ISpanError(
                f"unknown model option(s) {unknown}; valid: {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **changes)


def field_names() -> list[str]:
    return [f.name for f in fields(ModelConfig)]


def _bounded(name: str, value: int, low: int, high: int, hint: str) -> None:
    if not low <= value <= high:
        raise ISpanError(f"config field {name} must be in [{low}, {high}] ({hint}), got {value}")


def _choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ISpanError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
