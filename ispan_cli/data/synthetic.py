"""A synthetic action dataset rendered on the fly from a seed, with ground-truth boxes.

Each clip shows one small yellow *target* object over a scrolling textured background, among
moving distractor objects of other colours. The class is carried by the target's shape and its
motion pattern together (every class has its own shape and its own trajectory), and the
distractors use the same shapes, so a model has to find the yellow object: where attention
matters. The target's box is known for every frame, which is what the attention check measures.

Clips are pure functions of (seed, subset, index): any frame of any clip can be rendered without
rendering the others, so training samples only the K frames it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (shape, motion) per class; the labels say they are synthetic so nobody mistakes them for
# real actions.
CLASSES: tuple[tuple[str, str], ...] = (
    ("square", "horizontal"),
    ("disc", "vertical"),
    ("triangle", "diagonal"),
    ("cross", "circular"),
    ("diamond", "zigzag"),
)
LABELS: tuple[str, ...] = tuple(f"synthetic-{shape}-{motion}" for shape, motion in CLASSES)
SHAPES = tuple(shape for shape, _ in CLASSES)
TARGET_RGB = np.array([250, 215, 30], np.float32)
DISTRACTOR_RGB = np.array(
    [[40, 200, 230], [220, 60, 200], [60, 90, 240], [80, 220, 90], [235, 235, 235]], np.float32
)
SUBSETS = ("train", "val")
# the target is the larger object: about 1/10 of the frame, still a small part of it
TARGET_RADIUS = (11.0, 14.0)
DISTRACTOR_RADIUS = (5.0, 8.0)


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and timing of the rendered clips."""

    size: int = 128
    frames: int = 32
    fps: float = 16.0
    distractors: int = 3


@dataclass(frozen=True)
class _Object:
    shape: str
    radius: float
    colour: np.ndarray
    start: np.ndarray  # (2,) x, y in pixels
    velocity: np.ndarray  # (2,) pixels per frame, for linear (bouncing) motion
    motion: str
    phase: float


@dataclass(frozen=True)
class SyntheticClip:
    """One clip's parameters; ``render`` draws any of its frames."""

    label: int
    spec: SyntheticSpec
    target: _Object
    distractors: tuple[_Object, ...]
    texture: np.ndarray  # (T, T, 3) uint8 tile, scrolled under the objects
    scroll: np.ndarray  # (2,) pixels per frame

    def box(self, t: int) -> tuple[float, float, float, float]:
        """Target box (x0, y0, x1, y1) in pixels of the rendered frame at frame ``t``."""
        x, y = _position(self.target, t, self.spec)
        r = self.target.radius
        return (x - r, y - r, x + r, y + r)

    def render(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """(len(indices), size, size, 3) uint8 RGB frames."""
        out = np.empty((len(indices), self.spec.size, self.spec.size, 3), np.uint8)
        for i, t in enumerate(indices):
            out[i] = self._frame(int(t))
        return out

    def _frame(self, t: int) -> np.ndarray:
        s = self.spec.size
        tile = self.texture.shape[0]
        dy, dx = (self.scroll * t).astype(int) % tile
        ys = (np.arange(s) + dy) % tile
        xs = (np.arange(s) + dx) % tile
        img = self.texture[ys][:, xs].astype(np.float32)
        # distractors first: the target is drawn on top, so its box is always fully visible
        for obj in (*self.distractors, self.target):
            _draw(img, obj, _position(obj, t, self.spec))
        return img.clip(0, 255).astype(np.uint8)


def make_clip(
    seed: int, subset: str, index: int, spec: SyntheticSpec | None = None
) -> SyntheticClip:
    """The clip ``index`` of ``subset`` (train or val) for ``seed``; classes are balanced."""
    spec = spec or SyntheticSpec()
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    rng = np.random.default_rng([seed, SUBSETS.index(subset), index])
    label = index % len(CLASSES)
    shape, motion = CLASSES[label]
    target = _random_object(
        rng, spec, shape, motion, TARGET_RGB + rng.uniform(-15, 15, 3), TARGET_RADIUS
    )
    distractors = tuple(
        _random_object(
            rng,
            spec,
            SHAPES[rng.integers(len(SHAPES))],
            "linear",
            DISTRACTOR_RGB[rng.integers(len(DISTRACTOR_RGB))] + rng.uniform(-20, 20, 3),
            DISTRACTOR_RADIUS,
        )
        for _ in range(spec.distractors)
    )
    # muted blocky texture: busy enough that an object is not found by brightness alone
    cells = rng.integers(70, 150, (8, 8, 3)).astype(np.uint8)
    texture = np.kron(cells, np.ones((16, 16, 1), np.uint8))
    scroll = rng.uniform(-1.5, 1.5, 2)
    return SyntheticClip(label, spec, target, distractors, texture, scroll)


def _random_object(
    rng, spec: SyntheticSpec, shape: str, motion: str, colour, radius_range: tuple[float, float]
) -> _Object:
    radius = float(rng.uniform(*radius_range))
    margin = spec.size * 0.25
    start = rng.uniform(margin, spec.size - margin, 2)
    speed = rng.uniform(1.5, 3.0)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(angle), np.sin(angle)])
    return _Object(
        shape,
        radius,
        np.asarray(colour, np.float32),
        start,
        velocity,
        motion,
        float(rng.uniform(0, 2 * np.pi)),
    )


def _position(obj: _Object, t: int, spec: SyntheticSpec) -> tuple[float, float]:
    lo, hi = obj.radius + 1, spec.size - obj.radius - 1
    amp = spec.size * 0.3
    w = 2 * np.pi / spec.frames  # one period over the clip
    cx, cy = obj.start
    if obj.motion == "horizontal":
        x, y = cx + amp * np.sin(w * t + obj.phase), cy
    elif obj.motion == "vertical":
        x, y = cx, cy + amp * np.sin(w * t + obj.phase)
    elif obj.motion == "diagonal":
        d = amp * np.sin(w * t + obj.phase) / np.sqrt(2)
        x, y = cx + d, cy + d
    elif obj.motion == "circular":
        x, y = (
            cx + 0.6 * amp * np.cos(w * t + obj.phase),
            cy + 0.6 * amp * np.sin(w * t + obj.phase),
        )
    elif obj.motion == "zigzag":
        x = cx + amp * np.sin(w * t + obj.phase)
        y = cy + 0.5 * amp * np.sign(np.sin(4 * w * t + obj.phase))
    else:  # linear, bouncing off the borders
        x, y = (_bounce(p + v * t, lo, hi) for p, v in zip(obj.start, obj.velocity, strict=True))
    return float(np.clip(x, lo, hi)), float(np.clip(y, lo, hi))


def _bounce(p: float, lo: float, hi: float) -> float:
    span = hi - lo
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def _draw(img: np.ndarray, obj: _Object, centre: tuple[float, float]) -> None:
    x, y = centre
    r = obj.radius
    s = img.shape[0]
    x0, x1 = max(int(x - r) - 1, 0), min(int(x + r) + 2, s)
    y0, y1 = max(int(y - r) - 1, 0), min(int(y + r) + 2, s)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xx - x) / r, (yy - y) / r  # unit coordinates, v pointing down
    if obj.shape == "square":
        mask = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    elif obj.shape == "disc":
        mask = u * u + v * v <= 1.0
    elif obj.shape == "triangle":
        mask = (v <= 0.8) & (v >= -1.0 + 2 * np.abs(u))  # apex up, base at the bottom
    elif obj.shape == "cross":
        mask = ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    elif obj.shape == "diamond":
        mask = np.abs(u) + np.abs(v) <= 1.0
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    img[y0:y1, x0:x1][mask] = obj.colour
