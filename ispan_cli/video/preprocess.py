"""The one preprocessing definition: decoded RGB frames -> normalised model input.

Evaluation, PyTorch inference and ONNX Runtime inference all call :func:`preprocess`, and every
model folder records its :class:`PreprocessSpec` in ``config.json`` under ``"preprocessing"``.
NumPy only (OpenCV for resizing frames that did not come pre-scaled from a decoder), so the ONNX
path needs no torch; PyTorch callers wrap the result with ``torch.from_numpy``. Train-time
augmentation (scale jitter, corner crops, flips) is a separate thing in ``ispan_cli.data``.

Steps: scale so the shorter side is ``resize`` pixels (area averaging; decoders do this while
converting to RGB when they know the size), cut ``crops`` square ``crop`` x ``crop`` views, scale
to [0, 1], subtract ``mean`` and divide by ``std`` per RGB channel.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.limits import MAX_RESIZE

if TYPE_CHECKING:  # importing ispan_cli.nn would import torch; the ONNX path must not need it
    from ispan_cli.nn.config import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_COUNTS = (1, 3, 10)
# std bounds: ImageNet's are 0.22-0.23; 1 means "no scaling". 1e-3 keeps values within +-1000.
MIN_STD, MAX_STD = 1e-3, 1e3
LAYOUT = "BKCHW"
SECTION = "preprocessing"


@dataclass(frozen=True)
class PreprocessSpec:
    """How frames become model input.

    resize: the shorter side after scaling, in pixels.
    crop: side of each square crop (the model's input size).
    crops: 1 (centre), 3 (centre, then the start and end of the longer side) or 10 (centre and
        the four corners, then the same five flipped left-right). Crop 0 is always the centre.
    mean, std: per RGB channel, applied to values scaled to [0, 1].
    layout: the model input layout, (B, K, 3, H, W); a video's crops form the batch axis B.
    """

    resize: int = 256
    crop: int = 224
    crops: int = 1
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = LAYOUT

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (
                not isinstance(value, (list, tuple))
                or len(value) != 3
                or not all(_is_number(v) and math.isfinite(v) for v in value)
            ):
                raise ISpanError(
                    f"preprocessing {name} must be 3 finite numbers (R, G, B), got {value!r:.80}"
                )
            object.__setattr__(self, name, tuple(float(v) for v in value))
        # Frames are scaled to [0, 1] first, so a mean outside it is a mistake; a tiny std would
        # blow values up to inf in float32 (NaN scores).
        if not all(0.0 <= m <= 1.0 for m in self.mean):
            raise ISpanError(
                f"preprocessing mean must be in [0, 1] per channel (of pixel values scaled to "
                f"[0, 1], e.g. ImageNet's {list(IMAGENET_MEAN)}), got {list(self.mean)}"
            )
        if not all(MIN_STD <= v <= MAX_STD for v in self.std):
            raise ISpanError(
                f"preprocessing std must be in [{MIN_STD:g}, {MAX_STD:g}] per channel (e.g. "
                f"ImageNet's {list(IMAGENET_STD)}), got {list(self.std)}"
            )
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= MAX_RESIZE:
                raise ISpanError(
                    f"preprocessing {name} must be a whole number of pixels in [1, {MAX_RESIZE}], "
                    f"got {value!r}"
                )
        if self.crop > self.resize:
            raise ISpanError(
                f"preprocessing crop {self.crop} is larger than the resized short side "
                f"{self.resize}; set resize >= crop"
            )
        if not _is_int(self.crops) or self.crops not in CROP_COUNTS:
            raise ISpanError(
                f"preprocessing crops must be one of {CROP_COUNTS}, got {self.crops!r}"
            )
        if self.layout != LAYOUT:
            raise ISpanError(f"preprocessing layout {self.layout!r} is not supported; use {LAYOUT}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        if not isinstance(data, dict):
            raise ISpanError(f'"{SECTION}" must be an object of fields, got {data!r:.80}')
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ISpanError(
                f"unknown preprocessing field(s) {unknown}; valid fields: {', '.join(valid)}"
            )
        return cls(**data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def default_spec(config: ModelConfig) -> PreprocessSpec:
    """The spec for a model without a recorded one: centre crop of ``input_size`` from frames
    whose short side is input_size * 256/224 (256 for 224), ImageNet mean and std."""
    size = int(config.input_size)
    return PreprocessSpec(resize=round(size * 256 / 224), crop=size)


def spec_from_config(config: ModelConfig, doc: dict[str, Any]) -> PreprocessSpec:
    """The ``preprocessing`` section of a config.json document, else :func:`default_spec`."""
    section = doc.get(SECTION)
    if section is None:
        return default_spec(config)
    if not isinstance(section, dict):
        raise ISpanError(f'"{SECTION}" in config.json must be an object, got {section!r}')
    return PreprocessSpec.from_dict(section)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after scaling so the shorter side is ``short_side``, aspect kept."""
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """(K, H, W, 3) uint8 frames scaled so min(H, W) == short_side (unchanged if already)."""
    _, h, w, _ = frames.shape
    new_w, new_h = scaled_size(w, h, short_side)
    if (new_w, new_h) == (w, h):
        return frames
    import cv2

    # Area averaging when shrinking (no aliasing), bilinear when enlarging; swscale's "area"
    # used by the PyAV decoder behaves the same way.
    interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
    out = np.empty((len(frames), new_h, new_w, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    return out


def crop_boxes(height: int, width: int, crop: int, crops: int) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of each crop, in the documented order."""
    if crop > min(height, width):
        raise ISpanError(f"crop {crop} does not fit in a {width}x{height} frame")
    # centre offsets rounded the way torchvision's CenterCrop rounds them, so models trained
    # with torchvision transforms see the same pixels here
    cy, cx = round((height - crop) / 2.0), round((width - crop) / 2.0)
    bottom, right = height - crop, width - crop
    if crops == 1:
        return [(cy, cx, False)]
    if crops == 3:
        if width >= height:  # along the longer side
            return [(cy, cx, False), (cy, 0, False), (cy, right, False)]
        return [(cy, cx, False), (0, cx, False), (bottom, cx, False)]
    if crops == 10:
        five = [(cy, cx), (0, 0), (0, right), (bottom, 0), (bottom, right)]
        return [(y, x, False) for y, x in five] + [(y, x, True) for y, x in five]
    raise ISpanError(f"crops must be one of {CROP_COUNTS}, got {crops}")


def preprocess(frames: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """(K, H, W, 3) uint8 RGB frames -> (crops, K, 3, crop, crop) float32 model input."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ISpanError(
            f"preprocess expects uint8 RGB frames shaped (K, H, W, 3), got {frames.dtype} "
            f"{tuple(frames.shape)}"
        )
    frames = resize_short_side(frames, spec.resize)
    _, h, w, _ = frames.shape
    size = spec.crop
    # (x / 255 - mean) / std folded into one multiply-add per element
    scale = (1.0 / (255.0 * np.asarray(spec.std, np.float32))).astype(np.float32)
    bias = (-np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)).astype(
        np.float32
    )
    boxes = crop_boxes(h, w, size, spec.crops)
    out = np.empty((len(boxes), len(frames), 3, size, size), np.float32)
    for c, (top, left, flip) in enumerate(boxes):
        patch = frames[:, top : top + size, left : left + size]  # (K, S, S, 3)
        if flip:
            patch = patch[:, :, ::-1]
        # Transposed while still uint8 (a quarter of the bytes of float32), then one multiply
        # into the output and one add in place: 7x less CPU than converting, normalising and
        # transposing float32 copies (2.6 ms against 18 ms for 8 frames), the same numbers.
        planar = np.ascontiguousarray(patch.transpose(0, 3, 1, 2))  # (K, S, S, 3) -> (K, 3, S, S)
        np.multiply(planar, scale[:, None, None], out=out[c])
        out[c] += bias[:, None, None]
    return out
