"""FlowSpec: how optical flow was made and how a flow model takes it, one torch-free type.

It is the contract a flow model's weights carry, like ``PreprocessSpec`` and ``SamplingSpec``:
``config.json`` holds it as a top-level ``"flow"`` section, the ONNX export copies it into the
metadata with the rest of the document, and ``ispan_cli.runtime.loading`` reads it back
(``LoadedModel.flow``). ``ispan flow extract`` writes the same fields into each video's
``flow.json`` (``ispan_cli.data.flow_format``), so a model can check that flow on disk was made
its way. It lives in ``video/`` because the loader (``runtime``) sits beside ``data`` and may not
import it.

Quantisation (dense_flow's, TSN's): each component clipped to +-bound pixels and mapped linearly
to 0-255, ``q = clip(rint(255 * (v + bound) / (2 * bound)), 0, 255)``; the model input is then
``(q - mean) / std`` per channel, L flows per segment with x and y interleaved (2L channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ispan_cli.errors import ISpanError

LAYOUTS = ("rawframes", "uv")
METHODS = ("tvl1", "dis", "raft")
DEFAULT_BOUND = 20.0
JPEG_QUALITY = 95  # OpenCV's default, which dense_flow and MMAction2's extractors write with
QUANTISATION = "q = clip(rint(255 * (v + bound) / (2 * bound)), 0, 255)"
GRAYSCALE = "ITU-R BT.601 luma of the RGB frame (OpenCV RGB2GRAY)"
# TSN's flow normalisation as MMAction2's TSN flow configs write it (mean 128, std 128 on the
# 0-255 values): the checkpoints the import issue converts were trained with it. The original
# Caffe TSN subtracted 128 only (std 1); tsn-pytorch used (v/255 - 0.5) / 0.226.
FLOW_MEAN = 128.0
FLOW_STD = 128.0
NEW_LENGTH = 5  # L: flows stacked per segment (TSN), 2L input channels
MAX_LENGTH = 64
SECTION = "flow"


@dataclass(frozen=True)
class FlowSpec:
    """How a flow was made, and how a flow model stacks and normalises it.

    method: ``tvl1``, ``dis`` or ``raft``; bound: the +-pixels clipped to before quantising;
    layout: how the JPEGs lie on disk (``rawframes`` or ``uv``; either reads the same flow);
    short_side: frames were scaled so their shorter side had this many pixels before the flow
    was computed (None: as decoded); rgb: RGB frames were written beside the flow; params: the
    method's settings as the algorithm reports them (recorded, not compared: they differ
    between OpenCV builds). length: L, the flows stacked per segment (2L model channels);
    mean, std: the normalisation of the 0-255 quantised values.
    """

    method: str = "tvl1"
    bound: float = DEFAULT_BOUND
    layout: str = "rawframes"
    short_side: int | None = None
    rgb: bool = False
    params: tuple[tuple[str, Any], ...] = ()
    length: int = NEW_LENGTH
    mean: float = FLOW_MEAN
    std: float = FLOW_STD

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ISpanError(
                f"flow method {self.method!r} is not one ispan knows ({', '.join(METHODS)})"
            )
        if self.layout not in LAYOUTS:
            raise ISpanError(f"flow layout {self.layout!r}: use one of {', '.join(LAYOUTS)}")
        for name in ("bound", "std"):
            value = getattr(self, name)
            if not _number(value) or not math.isfinite(value) or value <= 0:
                raise ISpanError(f"flow {name} must be a positive number, got {value!r:.40}")
        if not _number(self.mean) or not math.isfinite(self.mean):
            raise ISpanError(f"flow mean must be a finite number, got {self.mean!r:.40}")
        if not _whole(self.length) or not 1 <= self.length <= MAX_LENGTH:
            raise ISpanError(
                f"flow length L must be a whole number 1..{MAX_LENGTH} (TSN: 5), got "
                f"{self.length!r:.40}"
            )
        if self.short_side is not None and (not _whole(self.short_side) or self.short_side < 1):
            raise ISpanError(f"flow short_side must be a whole number of pixels or null, got "
                             f"{self.short_side!r:.40}")  # fmt: skip
        object.__setattr__(self, "bound", float(self.bound))
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))

    @property
    def channels(self) -> int:
        """2L: the model's input channels."""
        return 2 * self.length

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "bound": self.bound,
            "layout": self.layout,
            "short_side": self.short_side,
            "rgb": self.rgb,
            "params": dict(self.params),
            "length": self.length,
            "mean": self.mean,
            "std": self.std,
            "quantisation": QUANTISATION,
            "jpeg_quality": JPEG_QUALITY,
            "grayscale": GRAYSCALE,
        }

    @classmethod
    def from_dict(cls, d: Any) -> FlowSpec:
        """A spec as ``to_dict`` writes it (``flow.json`` of earlier versions lack length, mean
        and std: TSN's defaults). A different quantisation is refused: ispan reads only its own."""
        if not isinstance(d, dict):
            raise ISpanError(f'"{SECTION}" must be an object of fields, got {d!r:.60}')
        if "method" not in d:
            raise ISpanError(f'"{SECTION}" has no "method" (one of {", ".join(METHODS)})')
        quantisation = d.get("quantisation", QUANTISATION)
        if quantisation != QUANTISATION:
            raise ISpanError(
                f"flow quantisation {quantisation!r:.80} is not ispan's ({QUANTISATION})"
            )
        params = d.get("params") or {}
        if not isinstance(params, dict):
            raise ISpanError(f"flow params must be an object, got {params!r:.40}")
        try:
            return cls(
                method=d["method"],
                bound=d.get("bound", DEFAULT_BOUND),
                layout=d.get("layout", "rawframes"),
                short_side=d.get("short_side"),
                rgb=bool(d.get("rgb", False)),
                params=tuple(sorted(params.items())),
                length=d.get("length", NEW_LENGTH),
                mean=d.get("mean", FLOW_MEAN),
                std=d.get("std", FLOW_STD),
            )
        except TypeError as exc:  # e.g. an unhashable method
            raise ISpanError(f'"{SECTION}" is damaged ({exc})') from exc

    def with_length(self, length: int) -> FlowSpec:
        return replace(self, length=length)

    def differences(self, made: FlowSpec) -> list[str]:
        """What makes flow made as ``made`` describes unfit for a model expecting ``self``:
        method, bound and, where both recorded one, the frame size. Layout, RGB frames and
        the algorithm's settings do not change what the model sees."""
        out = []
        if made.method != self.method:
            out.append(f"method {made.method} (the model's: {self.method})")
        if made.bound != self.bound:
            out.append(f"bound {made.bound:g} (the model's: {self.bound:g})")
        if (
            self.short_side is not None
            and made.short_side is not None
            and made.short_side != self.short_side
        ):
            out.append(f"short side {made.short_side} (the model's: {self.short_side})")
        return out

    def describe(self) -> str:
        size = f", frames scaled to short side {self.short_side}" if self.short_side else ""
        return f"{self.method}, bound {self.bound:g}, L={self.length}{size}"


def check_flow_fits(model: FlowSpec, made: FlowSpec, where: str) -> None:
    """Refuses flow made another way than the model's weights expect, in one line."""
    problems = model.differences(made)
    if problems:
        raise ISpanError(
            f"{where}: flow made with {'; '.join(problems)}; extract it again with `ispan flow "
            f"extract --method {model.method} --bound {model.bound:g}"
            + (f" --short-side {model.short_side}" if model.short_side else "")
            + "`, or use a flow model trained on this flow"
        )


def check_channels(spec: FlowSpec, in_channels: int) -> None:
    """The model's first convolution must take the 2L channels its flow spec stacks."""
    if in_channels != spec.channels:
        raise ISpanError(
            f"the flow section says L={spec.length} (2L = {spec.channels} channels) but the "
            f"model takes {in_channels} input channels; the config.json is inconsistent"
        )


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
