"""Synthetic benchmark videos, shared by the benchmark scripts.

A textured background scrolling under a moving square, so every frame changes and encoders use
P- and B-frames, with the encoders' usual keyframe intervals (XviD-like 300 for MPEG-4 part 2,
x264's 250). Long files repeat the packets of one encoded unit with shifted timestamps: a valid,
seekable file built in seconds instead of an hour of encoding.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _frames(n: int, width: int, height: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(tile, np.ones((8, 8, 1), np.uint8))
    side = max(8, min(width, height) // 5)
    for i in range(n):
        dy, dx = i % 16, (2 * i) % 16
        frame = np.ascontiguousarray(texture[dy : dy + height, dx : dx + width])
        x, y = (7 * i) % (width - side), (3 * i) % (height - side)
        frame[y : y + side, x : x + side] = (230, 40, 40)
        yield frame


def encode(
    path: Path,
    seconds: float,
    width: int,
    height: int,
    codec: str,
    fps: int = 25,
    smooth: bool = False,
    seed: int = 0,
) -> Path:
    """Writes a synthetic clip; ``smooth`` gives low-complexity content (low bitrate)."""
    options = {"g": "300", "bf": "2"} if codec == "mpeg4" else {"preset": "veryfast", "crf": "23"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 800_000
        n = round(seconds * fps)
        if smooth:
            yy, xx = np.mgrid[0:height, 0:width]
            grad = np.stack([xx * 255 // width, yy * 255 // height, 128 + 0 * xx], -1)
            base = grad.astype(np.uint8)
            frames = (_square(base, i) for i in range(n))
        else:
            frames = _frames(n, width, height, seed)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _square(base: np.ndarray, i: int) -> np.ndarray:
    frame = base.copy()
    h, w = base.shape[:2]
    side = h // 4
    x, y = (5 * i) % (w - side), (2 * i) % (h - side)
    frame[y : y + side, x : x + side] = (230, 40, 40)
    return frame


def repeat_packets(unit: Path, path: Path, repeats: int) -> Path:
    """A long file made of ``repeats`` copies of ``unit``'s packets, timestamps shifted."""
    with av.open(str(unit)) as src, av.open(str(path), "w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        packets = [p for p in src.demux(in_stream) if p.size]
        step = int(np.median(np.diff(sorted(p.pts for p in packets))))
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + step
        for r in range(repeats):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts = p.pts + r * span, p.dts + r * span
                q.time_base = in_stream.time_base
                q.is_keyframe = p.is_keyframe
                q.stream = out_stream
                dst.mux(q)
    return path


def write_long(path: Path, minutes: float, width: int, height: int) -> Path:
    """A ``minutes`` long H.264 file: a 10 s low-complexity unit repeated."""
    unit = encode(
        path.with_name(path.stem + ".unit.mp4"), 10, width, height, "libx264", smooth=True
    )
    repeat_packets(unit, path, max(1, round(minutes * 6)))
    unit.unlink()
    return path
