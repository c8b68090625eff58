"""Train-time augmentation (TSN recipe): multi-scale corner cropping, scale jitter, flips.

Evaluation never uses this: it calls ``ispan_cli.video.preprocess``, the one preprocessing
definition. Both normalise with the same PreprocessSpec mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ispan_cli.video.preprocess import PreprocessSpec, resize_short_side

SCALES = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class Augment:
    """TSN's GroupMultiScaleCrop + flip: one crop box and one flip for all K frames of a clip.

    Width and height are drawn from SCALES x short side (at most one scale step apart), the box
    is placed at one of the 4 corners, the centre or the 4 edge centres (corner cropping), then
    resized to ``spec.crop``.
    """

    spec: PreprocessSpec
    flip: bool = True
    corner_crop: bool = True

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(K, H, W, 3) uint8 -> (K, 3, crop, crop) float32, normalised."""
        import cv2

        frames = resize_short_side(frames, self.spec.resize)
        _, h, w, _ = frames.shape
        top, left, ch, cw = multiscale_box(h, w, rng, self.corner_crop)
        flip = self.flip and rng.random() < 0.5
        size = self.spec.crop
        out = np.empty((len(frames), 3, size, size), np.float32)
        mean = np.asarray(self.spec.mean, np.float32) * 255.0
        std = np.asarray(self.spec.std, np.float32) * 255.0
        for k, frame in enumerate(frames):
            patch = frame[top : top + ch, left : left + cw]
            patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
            if flip:
                patch = patch[:, ::-1]
            out[k] = ((patch.astype(np.float32) - mean) / std).transpose(2, 0, 1)  # HWC -> CHW
        return out


def multiscale_box(
    h: int, w: int, rng: np.random.Generator, corner_crop: bool = True
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of one TSN multi-scale crop of an h x w frame (shared by the
    RGB and the flow augmentation, ``ispan_cli.data.flow_frames``)."""
    base = min(h, w)
    sizes = [int(base * s) for s in SCALES]
    while True:
        i, j = rng.integers(len(sizes), size=2)
        if abs(int(i) - int(j)) <= 1:
            break
    ch, cw = sizes[i], sizes[j]
    if corner_crop:
        ys = (0, (h - ch) // 2, h - ch)
        xs = (0, (w - cw) // 2, w - cw)
        top, left = ys[rng.integers(3)], xs[rng.integers(3)]
    else:
        top, left = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return int(top), int(left), ch, cw
