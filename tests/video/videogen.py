"""Test videos whose pixels encode the frame index, written with PyAV.

A frame is a 4x4 grid of cells. Cell (0, 0) is a red orientation marker; the other 15 cells are
the bits of the frame index (white = 1, black = 0, most significant first, row-major). Cells are
large and flat, so the pattern survives lossy coding, chroma subsampling and downscaling; it is
read back from the centre of each cell.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4
BITS = GRID * GRID - 1
MARKER = (230, 30, 30)


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """The RGB frame (height, width, 3) uint8 that encodes ``index``."""
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    img = np.zeros((height, width, 3), np.uint8)
    ys = np.linspace(0, height, GRID + 1).round().astype(int)
    xs = np.linspace(0, width, GRID + 1).round().astype(int)
    for cell in range(GRID * GRID):
        r, c = divmod(cell, GRID)
        region = img[ys[r] : ys[r + 1], xs[c] : xs[c + 1]]
        if cell == 0:
            region[:] = MARKER
        elif (index >> (BITS - cell)) & 1:
            region[:] = 255
    return img


def _cell_means(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    ys = np.linspace(0, h, GRID + 1)
    xs = np.linspace(0, w, GRID + 1)
    out = np.zeros((GRID, GRID, 3))
    for r in range(GRID):
        for c in range(GRID):
            # the middle half of the cell: away from edges blurred by coding and scaling
            y0, y1 = ys[r] + (ys[r + 1] - ys[r]) / 4, ys[r + 1] - (ys[r + 1] - ys[r]) / 4
            x0, x1 = xs[c] + (xs[c + 1] - xs[c]) / 4, xs[c + 1] - (xs[c + 1] - xs[c]) / 4
            cell = frame[int(y0) : max(int(y1), int(y0) + 1), int(x0) : max(int(x1), int(x0) + 1)]
            out[r, c] = cell.reshape(-1, 3).mean(0)
    return out


def read_index(frame: np.ndarray) -> int:
    """Decodes the frame index from an RGB frame; raises if the marker is not top-left."""
    means = _cell_means(frame)
    marker = means[0, 0]
    if not (marker[0] > 150 and marker[1] < 100 and marker[2] < 100):
        raise AssertionError(f"orientation marker not in the top-left cell (cell mean {marker})")
    value = 0
    for cell in range(1, GRID * GRID):
        r, c = divmod(cell, GRID)
        value = (value << 1) | int(means[r, c].mean() > 128)
    return value


def marker_corner(frame: np.ndarray) -> str:
    """Which corner holds the red marker: 'tl', 'tr', 'bl' or 'br'."""
    means = _cell_means(frame)
    corners = {"tl": means[0, 0], "tr": means[0, -1], "bl": means[-1, 0], "br": means[-1, -1]}
    return max(corners, key=lambda k: corners[k][0] - corners[k][1:].mean())


def write_pattern_video(
    path: Path,
    codec: str,
    num_frames: int,
    width: int = 96,
    height: int = 72,
    rate: int = 25,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    audio: bool = False,
) -> Path:
    """Encodes ``num_frames`` pattern frames; ``pts`` (in ``time_base``) gives variable timing."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        astream = container.add_stream("aac", rate=16000) if audio else None
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            if time_base is None:
                frame.time_base = Fraction(1, rate)
            else:
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            _write_silence(container, astream, num_frames / rate)
    return path


def _write_silence(container, stream, seconds: float) -> None:
    samples = int(seconds * stream.rate)
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, samples), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = stream.rate
    frame.pts = 0
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: Path) -> Path:
    """A one-second AAC file: a container with no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), "fltp", "mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path
