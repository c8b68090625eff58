"""Generated test videos: a textured background scrolling under a moving square.

Every frame differs, so encoders use P- and B-frames and decoding costs what real footage costs.
Used where a real video is needed and none is given (export verification, calibration,
benchmarks). Different seeds give different textures and motion.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def synthetic_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(n, height, width, 3) uint8 RGB frames."""
    rng = np.random.default_rng(seed)
    cell = 8
    tile = rng.integers(0, 256, (height // cell + 3, width // cell + 3, 3), dtype=np.uint8)
    texture = np.kron(tile, np.ones((cell, cell, 1), np.uint8))
    side = max(8, min(width, height) // 4)
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    vx, vy = (int(v) for v in rng.integers(2, 9, 2))
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        dy, dx = i % 16, (2 * i) % 16
        out[i] = texture[dy : dy + height, dx : dx + width]
        x, y = (vx * i) % (width - side), (vy * i) % (height - side)
        out[i, y : y + side, x : x + side] = colour
    return out


def write_synthetic_video(
    path: str | Path,
    seconds: float = 4.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    seed: int = 0,
) -> Path:
    """Encodes a synthetic H.264 clip (UCF101-like size and rate by default)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, rgb in enumerate(
            synthetic_frames(max(1, round(seconds * fps)), width, height, seed)
        ):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
