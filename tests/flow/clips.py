"""Tiny generated clips with known motion: a smooth random texture seen through a window that
moves by a fixed step each frame, so the true flow is the same (dx, dy) at every pixel. Encoded
losslessly (FFV1, RGB), so the decoded frames are the generated ones exactly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

W, H, FRAMES = 64, 48, 8
SHIFT = (1, 2)  # (dx, dy) pixels per frame: the texture moves right and down


def shifted_frames(
    n: int = FRAMES, width: int = W, height: int = H, shift=SHIFT, seed: int = 0
) -> np.ndarray:
    """(n, height, width, 3) uint8 RGB; frame i shows the texture moved by i * shift."""
    import cv2

    rng = np.random.default_rng(seed)
    dx, dy = shift
    pad = max(abs(dx), abs(dy)) * n + 4
    big = rng.integers(0, 256, (height + 2 * pad, width + 2 * pad), dtype=np.uint8)
    big = cv2.normalize(cv2.GaussianBlur(big, (0, 0), 1.5), None, 0, 255, cv2.NORM_MINMAX)
    colour = np.stack([big, np.roll(big, 7, 0), np.roll(big, 5, 1)], axis=-1)
    # the window moves by -shift, so the content moves by +shift
    return np.stack(
        [colour[pad - i * dy : pad - i * dy + height, pad - i * dx : pad - i * dx + width]
         for i in range(n)]
    )  # fmt: skip


def write_clip(path: Path, frames: np.ndarray) -> Path:
    """FFV1 in Matroska, bgr0: lossless, so decoding gives ``frames`` back exactly."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_independently(path: Path) -> np.ndarray:
    """Every frame through PyAV directly (not ispan's video layer)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
