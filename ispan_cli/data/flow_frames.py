"""Flow for training and evaluation: a video's extracted flow (either layout of
``ispan_cli.data.flow_format``, ours or the community's), TSN's segment sampling and stacking,
TSN's flow augmentation and the flow normalisation.

A flow input is L consecutive flows per segment, x and y interleaved: channels
(x_t, y_t, x_t+1, y_t+1, ..., x_t+L-1, y_t+L-1), 2L = 10 channels for TSN's L = 5. Arrays stay
uint8 (0-255, the quantised JPEG values) until :func:`normalise_flow`, so a horizontal flip can
negate x exactly in that domain: 255 - q (TSN's GroupRandomHorizontalFlip(is_flow=True) inverts
the x images the same way; as zero motion is level 128, 255 - 128 = 127 is zero again to within
one level, 0.16 px at bound 20).

Imports neither torch nor a video backend (OpenCV reads the JPEGs and resizes).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispan_cli.data.augment import multiscale_box
from ispan_cli.data.flow_format import (
    FLOW_MEAN,
    FLOW_STD,
    NEW_LENGTH,
    FlowMeta,
    detect_layout,
    flow_names,
    read_meta,
    video_dirs,
)
from ispan_cli.errors import ISpanError
from ispan_cli.terminal import visible

_RAW_X = re.compile(r"flow_x_(\d+)\.jpg$")
_UV = re.compile(r"frame(\d+)\.jpg$")


@dataclass(frozen=True)
class FlowFrames:
    """One video's flow on disk: ``count`` flows numbered 1..count (``read`` takes 0-based
    indices). ``meta`` is its ``flow.json`` (None for flow extracted by other tools)."""

    x_dir: Path
    y_dir: Path
    layout: str
    count: int
    meta: FlowMeta | None = None

    def files(self, index: int) -> tuple[Path, Path]:
        """The x and y JPEGs of flow ``index`` (0-based)."""
        x, y = flow_names(self.layout, index + 1)
        return self.x_dir / x, self.y_dir / y

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Flows at ``indices`` (0-based, repeats allowed) as (len, H, W, 2) uint8, x then y."""
        import cv2

        out = []
        for i in indices:
            if not 0 <= i < self.count:
                raise ISpanError(
                    f"flow {i + 1} is outside {visible(self.x_dir)} (flows 1..{self.count})"
                )
            pair = []
            for path in self.files(int(i)):
                image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                if image is None:
                    raise ISpanError(
                        f"cannot read {visible(path)}: missing or not a JPEG; extract this "
                        "video's flow again (ispan flow extract resumes)"
                    )
                pair.append(image)
            if pair[0].shape != pair[1].shape:
                raise ISpanError(f"{visible(self.x_dir)}: flow {i + 1} x and y differ in size")
            out.append(np.stack(pair, axis=-1))
        return np.stack(out)


def open_flow(root: str | Path, name: str, layout: str | None = None) -> FlowFrames:
    """The flow of video ``name`` under ``root`` (layout detected when None): counted from
    ``flow.json`` when there is one, else from the x files (which must match the y files)."""
    layout = layout or detect_layout(root)
    x_dir, y_dir = video_dirs(root, layout, name)
    if not x_dir.is_dir() or not y_dir.is_dir():
        raise ISpanError(f"no flow for {visible(name)} under {visible(root)} ({layout} layout)")
    meta = read_meta(x_dir)
    if meta is not None:
        return FlowFrames(x_dir, y_dir, layout, meta.flows, meta)
    pattern = _RAW_X if layout == "rawframes" else _UV
    count = sum(1 for p in x_dir.iterdir() if pattern.match(p.name))
    y_count = (
        count if layout == "rawframes" else sum(1 for p in y_dir.iterdir() if _UV.match(p.name))
    )
    if count == 0 or count != y_count:
        raise ISpanError(
            f"{visible(x_dir)}: {count} x and {y_count} y flow images; extract this video's flow "
            "again"
        )
    return FlowFrames(x_dir, y_dir, layout, count)


def flow_name_candidates(video: str | Path, data_root: str | Path | None = None) -> list[str]:
    """The names a video's flow may be under, in the order tried: its path under
    ``data_root`` without the suffix, ``<class>/<video>`` (MMAction2, ``ispan flow extract
    --dataset``) and ``<video>`` (the flat shared archives)."""
    p = Path(video)
    names = []
    if data_root is not None:
        with contextlib.suppress(ValueError):  # not under the root
            names.append(p.relative_to(data_root).with_suffix("").as_posix())
    names += [f"{p.parent.name}/{p.stem}", p.stem]
    return list(dict.fromkeys(n for n in names if n and not n.startswith("/")))


def find_flow(
    flow_root: str | Path, video: str | Path, data_root: str | Path | None = None
) -> FlowFrames:
    """The flow of a dataset video under ``flow_root`` (see :func:`flow_name_candidates`)."""
    layout = detect_layout(flow_root)
    names = flow_name_candidates(video, data_root)
    for name in names:
        x_dir, y_dir = video_dirs(flow_root, layout, name)
        if x_dir.is_dir() and y_dir.is_dir():
            return open_flow(flow_root, name, layout)
    raise ISpanError(
        f"no flow for {visible(video)} under {visible(flow_root)} ({layout} layout; looked for "
        f"{', '.join(visible(n) for n in names)}); extract it with `ispan flow extract`"
    )


def segment_starts(
    count: int,
    segments: int,
    length: int = NEW_LENGTH,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(K,) first flow (0-based) of each segment's stack of ``length``, as TSN samples them:
    the centre of each of K equal parts of the possible starts (testing, ``rng`` None) or a
    random start inside each part (training). Stacks that run past the last flow are clamped
    to it by :func:`stack_flows` (a short video repeats its last flow, as TSN does)."""
    room = count - length + 1  # possible starts
    if room <= 0:
        return np.zeros(segments, np.int64)
    if rng is None:
        tick = room / segments
        return np.array([int(tick / 2.0 + tick * k) for k in range(segments)], np.int64)
    if room >= segments:
        part = room // segments
        return np.arange(segments, dtype=np.int64) * part + rng.integers(part, size=segments)
    return np.sort(rng.integers(room, size=segments)).astype(np.int64)


def stack_flows(flow: FlowFrames, starts: Sequence[int], length: int = NEW_LENGTH) -> np.ndarray:
    """(K, H, W, 2L) uint8: for each start, ``length`` consecutive flows with x and y
    interleaved (x_t, y_t, x_t+1, y_t+1, ...)."""
    starts = np.asarray(starts, np.int64)
    indices = np.minimum(starts[:, None] + np.arange(length)[None, :], flow.count - 1)  # (K, L)
    unique, where = np.unique(indices, return_inverse=True)
    read = flow.read(unique.tolist())  # (U, H, W, 2)
    picked = read[where.reshape(indices.shape)]  # (K, L, H, W, 2)
    k, n, h, w, _ = picked.shape
    return picked.transpose(0, 2, 3, 1, 4).reshape(k, h, w, 2 * n)  # (K, H, W, L*2): x0 y0 x1..


def flip_flow(stacks: np.ndarray) -> np.ndarray:
    """A horizontal flip of (..., H, W, 2L) uint8 stacks: mirrored, and the x channels (the
    even ones) negated in the quantised domain (255 - q)."""
    out = stacks[..., ::-1, :].copy()
    out[..., 0::2] = 255 - out[..., 0::2]
    return out


def normalise_flow(
    stacks: np.ndarray, mean: float = FLOW_MEAN, std: float = FLOW_STD
) -> np.ndarray:
    """(K, H, W, 2L) uint8 -> (K, 2L, H, W) float32, (q - mean) / std on every channel."""
    x = (stacks.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (K, H, W, C) -> (K, C, H, W)


def _resize(stacks: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    k, h, w, c = stacks.shape
    if (w, h) == (width, height):
        return stacks
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    out = np.empty((k, height, width, c), np.uint8)
    for i, image in enumerate(stacks):
        for j in range(0, c, 4):  # OpenCV resizes at most 4 channels at a time (INTER_AREA)
            part = np.ascontiguousarray(image[..., j : j + 4])
            resized = cv2.resize(part, (width, height), interpolation=interp)
            out[i, ..., j : j + 4] = resized.reshape(height, width, -1)
    return out


def resize_short_side(stacks: np.ndarray, short_side: int) -> np.ndarray:
    """(K, H, W, C) uint8 scaled so min(H, W) == short_side, every channel alike."""
    from ispan_cli.video.preprocess import scaled_size

    _, h, w, _ = stacks.shape
    return _resize(stacks, *scaled_size(w, h, short_side))


@dataclass(frozen=True)
class FlowAugment:
    """TSN's flow augmentation: one multi-scale corner crop (the RGB recipe's box,
    ``ispan_cli.data.augment.multiscale_box``) and one flip decision for every segment and
    every channel of a clip, then resized to ``crop`` and normalised.

    resize: short side the stacks are scaled to first (None: as extracted).
    """

    crop: int = 224
    resize: int | None = 256
    flip: bool = True
    corner_crop: bool = True
    mean: float = FLOW_MEAN
    std: float = FLOW_STD

    def __call__(self, stacks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(K, H, W, 2L) uint8 -> (K, 2L, crop, crop) float32."""
        if self.resize is not None:
            stacks = resize_short_side(stacks, self.resize)
        _, h, w, _ = stacks.shape
        top, left, ch, cw = multiscale_box(h, w, rng, self.corner_crop)
        flip = self.flip and rng.random() < 0.5
        patch = _resize(stacks[:, top : top + ch, left : left + cw], self.crop, self.crop)
        if flip:
            patch = flip_flow(patch)
        return normalise_flow(patch, self.mean, self.std)


def centre_crop_flow(
    stacks: np.ndarray,
    crop: int = 224,
    resize: int | None = 256,
    mean: float = FLOW_MEAN,
    std: float = FLOW_STD,
) -> np.ndarray:
    """Test-time flow input: short side to ``resize``, the centre ``crop`` (rounded as
    torchvision's CenterCrop), normalised: (K, H, W, 2L) uint8 -> (K, 2L, crop, crop)."""
    if resize is not None:
        stacks = resize_short_side(stacks, resize)
    _, h, w, _ = stacks.shape
    if crop > min(h, w):
        raise ISpanError(f"crop {crop} does not fit in {w}x{h} flow")
    top, left = round((h - crop) / 2.0), round((w - crop) / 2.0)
    return normalise_flow(stacks[:, top : top + crop, left : left + crop], mean, std)
