"""Which frames a model sees: TSN segments, uniform frames, dense clips and sliding windows.

Every sampler takes the frames' presentation times (``VideoReader.frame_times()``) and returns a
:class:`FrameSampling`: frame indices and timestamps shaped (views, frames per view), so callers
report exactly which frames were used. Random modes are seeded and deterministic.

Short videos: when a video has fewer distinct frames than a view needs, frames are repeated in
temporal order (each frame fills the segments that fall on it) and ``repeated`` is True, so the
output can say so. With ``allow_repeat=False`` a VideoTooShortError is raised instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.video.errors import VideoError, VideoTooShortError

Mode = Literal["centre", "random"]


@dataclass(frozen=True)
class FrameSampling:
    """indices/timestamps: (V, K) views of K frames; spans: (V, 2) [start, end) seconds."""

    method: str
    indices: np.ndarray
    timestamps: np.ndarray
    spans: np.ndarray
    repeated: bool

    def unique_indices(self) -> np.ndarray:
        """Sorted distinct frame indices: what a decoder has to fetch."""
        return np.unique(self.indices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "indices": self.indices.tolist(),
            "timestamps": np.round(self.timestamps, 6).tolist(),
            "spans": np.round(self.spans, 6).tolist(),
            "repeated": self.repeated,
        }


# The methods a model's weights may promise; other samplers are for callers' own use.
SAMPLING_METHODS = ("tsn",)


@dataclass(frozen=True)
class SamplingSpec:
    """How a model's clips are sampled, part of the contract its weights carry (like
    ``PreprocessSpec``): written to ``config.json`` and the ONNX metadata, read back by every
    loader. TSN: ``segments`` equal segments, one frame each, the centre frame at test time and a
    random one in training.

    Reads the two vocabularies earlier ispan versions wrote: ``{"method": "tsn", "test":
    "centre"}`` (model folders) and ``{"method": "tsn-centre"}`` (ONNX metadata).
    """

    segments: int
    method: str = "tsn"
    test: Mode = "centre"
    train: Mode = "random"

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ISpanError(
                f"sampling method {self.method!r} is not one ispan knows "
                f"({', '.join(SAMPLING_METHODS)})"
            )
        k = self.segments
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_SEGMENTS:
            raise ISpanError(f"sampling segments {k!r} must be a whole number 1..{MAX_SEGMENTS}")
        for name in ("test", "train"):
            if getattr(self, name) not in ("centre", "random"):
                raise ISpanError(f"sampling {name} {getattr(self, name)!r}: use centre or random")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "segments": self.segments, "test": self.test,
                "train": self.train}  # fmt: skip

    @classmethod
    def from_dict(cls, doc: Any, segments: int) -> SamplingSpec:
        """``doc`` as a model file carries it (None or {}: TSN with the model's ``segments``)."""
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise ISpanError(f"sampling must be an object, not {type(doc).__name__}")
        method = doc.get("method", "tsn")
        test = doc.get("test", "centre")
        if isinstance(method, str) and method.startswith("tsn-"):  # the ONNX vocabulary
            method, test = "tsn", method.removeprefix("tsn-")
        return cls(
            segments=doc.get("segments", segments),
            method=method,
            test=test,
            train=doc.get("train", "random"),
        )

    def sampler(self, segments: int | None = None, train: bool = False, seed: int = 0):
        """The sampler this spec describes (``segments``: another K, as ``--segments`` asks)."""
        return TSNSampler(segments or self.segments, self.train if train else self.test, seed)


# K beyond this is no video model's; a bound on what a model file may ask for.
MAX_SEGMENTS = 1024


@dataclass(frozen=True)
class TSNSampler:
    """K equal segments over the whole video, one frame each: the centre frame (testing) or a
    random frame of the segment (training)."""

    segments: int
    mode: Mode = "centre"
    seed: int = 0
    allow_repeat: bool = True

    def sample(self, times: np.ndarray, duration: float | None = None) -> FrameSampling:
        n = _frames(times)
        _positive("segments", self.segments)
        k = self.segments
        if self.mode == "centre":
            idx = _centres(n, k)
        else:
            lo = np.floor(n / k * np.arange(k)).astype(np.int64)
            hi = np.maximum(np.ceil(n / k * np.arange(1, k + 1)).astype(np.int64), lo + 1)
            idx = _rng(self.seed, self.mode).integers(lo, hi)
        idx = np.minimum(idx, n - 1)[None, :]
        span = np.array([[0.0, _duration(times, duration)]])
        return _finish(f"tsn-{self.mode}", idx, times, span, self.allow_repeat, f"{k} segments")


@dataclass(frozen=True)
class UniformSampler:
    """N frames evenly spaced from the first frame to the last, both included."""

    frames: int
    allow_repeat: bool = True

    def sample(self, times: np.ndarray, duration: float | None = None) -> FrameSampling:
        n = _frames(times)
        _positive("frames", self.frames)
        idx = np.round(np.linspace(0, n - 1, self.frames)).astype(np.int64)[None, :]
        span = np.array([[0.0, _duration(times, duration)]])
        return _finish("uniform", idx, times, span, self.allow_repeat, f"{self.frames} frames")


@dataclass(frozen=True)
class DenseSampler:
    """``num_clips`` clips of ``clip_len`` frames taken every ``stride`` frames; clips start
    evenly across the video (centre mode) or at random (training). A video shorter than one clip
    repeats its last frame."""

    clip_len: int
    stride: int = 1
    num_clips: int = 1
    mode: Mode = "centre"
    seed: int = 0
    allow_repeat: bool = True

    def sample(self, times: np.ndarray, duration: float | None = None) -> FrameSampling:
        n = _frames(times)
        for name in ("clip_len", "stride", "num_clips"):
            _positive(name, getattr(self, name))
        span_frames = (self.clip_len - 1) * self.stride + 1
        room = max(n - span_frames, 0)
        if self.mode == "random":
            starts = np.sort(_rng(self.seed, self.mode).integers(0, room + 1, self.num_clips))
        elif self.num_clips == 1:
            starts = np.array([room // 2])
        else:
            starts = np.round(np.linspace(0, room, self.num_clips)).astype(np.int64)
        idx = starts[:, None] + self.stride * np.arange(self.clip_len)[None, :]
        idx = np.minimum(idx, n - 1).astype(np.int64)
        step = _frame_step(times)
        spans = np.stack([times[idx[:, 0]], times[idx[:, -1]] + step], axis=1)
        what = f"clips of {self.clip_len} frames every {self.stride}"
        return _finish(f"dense-{self.mode}", idx, times, spans, self.allow_repeat, what)


# More windows than any video needs (a day at 10 windows a second): a bound, not a setting.
MAX_WINDOWS = 1_000_000


@dataclass(frozen=True)
class WindowSampler:
    """Windows of ``window`` seconds every ``stride`` seconds covering the whole video (the
    last one aligned to the end), each with ``frames`` TSN-centre frames chosen by timestamp,
    so variable-frame-rate video is windowed by real time."""

    window: float
    stride: float
    frames: int = 8
    allow_repeat: bool = True

    def sample(self, times: np.ndarray, duration: float | None = None) -> FrameSampling:
        n = _frames(times)
        if self.window <= 0 or self.stride <= 0:
            raise ISpanError(
                f"window and stride must be positive seconds, got {self.window}, {self.stride}"
            )
        _positive("frames", self.frames)
        total = _duration(times, duration)
        if total <= self.window:
            starts = np.array([0.0])
        else:
            count = (total - self.window) / self.stride + 1
            if count > MAX_WINDOWS:  # np.arange would try to allocate them all
                raise ISpanError(
                    f"--stride {self.stride:g} s makes {count:.3g} windows over this "
                    f"{total:.1f} s video (at most {MAX_WINDOWS:,}); use a stride of at least "
                    f"{(total - self.window) / (MAX_WINDOWS - 1):.3g} s"
                )
            starts = np.arange(0.0, total - self.window + 1e-9, self.stride)
            if starts[-1] + self.window < total - 1e-9:
                starts = np.append(starts, total - self.window)
        spans = np.stack([starts, np.minimum(starts + self.window, total)], axis=1)
        rows = []
        for start, end in spans:
            lo = int(np.searchsorted(times, start - 1e-9, side="left"))
            hi = int(np.searchsorted(times, end - 1e-9, side="left"))
            if hi <= lo:  # a gap in variable-rate video: the frame on screen at the start
                lo = max(int(np.searchsorted(times, start, side="right")) - 1, 0)
                hi = lo + 1
            rows.append(lo + _centres(hi - lo, self.frames))
        idx = np.minimum(np.stack(rows), n - 1)
        what = f"{self.frames} frames per {self.window:g} s window"
        return _finish("windows", idx, times, spans, self.allow_repeat, what)


Sampler = TSNSampler | UniformSampler | DenseSampler | WindowSampler


def _finish(
    method: str,
    idx: np.ndarray,
    times: np.ndarray,
    spans: np.ndarray,
    allow_repeat: bool,
    what: str,
) -> FrameSampling:
    repeated = any(len(np.unique(row)) < len(row) for row in idx)
    if repeated and not allow_repeat:
        distinct = max(len(np.unique(row)) for row in idx)
        raise VideoTooShortError(
            f"the video has too few frames for {what}: a view gets only {distinct} distinct "
            f"frame(s) of {idx.shape[1]} (video: {len(times)} frames); allow repeated frames "
            "or ask for fewer"
        )
    return FrameSampling(method, idx, times[idx], spans, repeated)


def _centres(n: int, k: int) -> np.ndarray:
    """The frame at the centre of each of k equal segments of n frames (TSN's test sampling)."""
    return (n / k * np.arange(k) + n / (2 * k)).astype(np.int64)


def _frames(times: np.ndarray) -> int:
    if len(times) == 0:
        raise VideoError("the video has no frames to sample")
    return len(times)


def _positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ISpanError(f"{name} must be a positive integer, got {value!r}")


def _rng(seed: int, mode: str) -> np.random.Generator:
    if mode != "random":
        raise ISpanError(f"unknown sampling mode {mode!r}; choose centre or random")
    return np.random.default_rng(seed)


def _frame_step(times: np.ndarray) -> float:
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def _duration(times: np.ndarray, duration: float | None) -> float:
    return float(duration) if duration is not None else float(times[-1]) + _frame_step(times)
