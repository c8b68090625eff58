"""Optical flow on disk: the two folder layouts, the file names, the quantisation and the
``flow.json`` record, in one torch-free, OpenCV-free place. ``ispan flow extract`` writes it;
the flow dataset code (``ispan_cli.data.flow_frames``) reads it, and reads the community's
pre-extracted flow too.

Layouts (``--layout``):

* ``rawframes``: MMAction2's and dense_flow's: ``<out>/<video>/flow_x_00001.jpg``,
  ``flow_y_00001.jpg``, ... and optionally the RGB frames ``img_00001.jpg``; numbers start at 1.
* ``uv``: the widely shared UCF101 TV-L1 archives' (``tvl1_flow/``): ``<out>/u/<video>/
  frame000001.jpg`` (x) and ``<out>/v/<video>/frame000001.jpg`` (y).

Flow ``i`` (1-based) is the motion from decoded frame ``i`` to frame ``i + 1``, so a video of N
frames has N - 1 flows. Each component is quantised to one grey JPEG as dense_flow (TSN's
extractor) does: clipped to +-bound pixels and mapped linearly to 0-255,

    q = clip(rint(255 * (v + bound) / (2 * bound)), 0, 255)    (rint: round half to even)

so zero motion is 128 (127.5 rounded to even) and, with bound 20, one grey level is 40/255 =
0.157 px; :func:`dequantise` is the inverse up to that step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispan_cli.errors import ISpanError

# The spec and its constants are torch-free facts the model loader needs too (below ``data`` in
# the layers): one definition in ispan_cli/video/flow_spec.py, re-exported here.
from ispan_cli.video.flow_spec import (  # noqa: F401
    DEFAULT_BOUND,
    FLOW_MEAN,
    FLOW_STD,
    JPEG_QUALITY,
    LAYOUTS,
    METHODS,
    NEW_LENGTH,
    QUANTISATION,
    FlowSpec,
)

META_FILE = "flow.json"
FORMAT = "ispan-flow"
FORMAT_VERSION = 1


def quantise(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(..., ) float flow component(s) in pixels -> uint8 grey levels (formula above)."""
    scaled = (np.asarray(flow, np.float64) + bound) * (255.0 / (2.0 * bound))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dequantise(levels: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 grey levels -> float32 pixels (the centre of each level's interval)."""
    return (np.asarray(levels, np.float32) * (2.0 * bound / 255.0) - bound).astype(np.float32)


def flow_names(layout: str, index: int) -> tuple[str, str]:
    """Relative paths, inside a video's folder(s), of flow ``index`` (1-based): (x, y).

    rawframes: ``flow_x_00001.jpg``; uv: ``u/frame000001.jpg`` (the video name goes between
    ``u`` and the file: see :func:`video_dirs`)."""
    if layout == "rawframes":
        return f"flow_x_{index:05d}.jpg", f"flow_y_{index:05d}.jpg"
    if layout == "uv":
        return f"frame{index:06d}.jpg", f"frame{index:06d}.jpg"
    raise ValueError(f"unknown flow layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")


def rgb_name(index: int) -> str:
    """``img_00001.jpg``: an RGB frame (1-based) beside its flow in the rawframes layout."""
    return f"img_{index:05d}.jpg"


def video_dirs(root: str | Path, layout: str, name: str) -> tuple[Path, Path]:
    """The folders of one video's x and y flow: the same folder for rawframes,
    ``root/u/<name>`` and ``root/v/<name>`` for uv."""
    root = Path(root)
    if layout == "uv":
        return root / "u" / name, root / "v" / name
    return root / name, root / name


def detect_layout(root: str | Path) -> str:
    """``uv`` when ``root`` holds ``u/`` and ``v/`` folders, else ``rawframes``."""
    root = Path(root)
    return "uv" if (root / "u").is_dir() and (root / "v").is_dir() else "rawframes"


@dataclass(frozen=True)
class FlowMeta:
    """The ``flow.json`` of one extracted video, written after all of its files: its presence
    marks the video as finished."""

    video: str  # the output name (folder) of the video
    source: str  # the video file it came from
    frames: int  # decoded frames; flows = frames - 1
    width: int
    height: int
    spec: FlowSpec
    seconds: float = 0.0

    @property
    def flows(self) -> int:
        return max(self.frames - 1, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "video": self.video,
            "source": self.source,
            "frames": self.frames,
            "flows": self.flows,
            "width": self.width,
            "height": self.height,
            "spec": self.spec.to_dict(),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowMeta:
        if d.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} record")
        return cls(
            video=str(d["video"]),
            source=str(d["source"]),
            frames=int(d["frames"]),
            width=int(d["width"]),
            height=int(d["height"]),
            spec=FlowSpec.from_dict(d["spec"]),
            seconds=float(d.get("seconds", 0.0)),
        )


def read_meta(folder: str | Path) -> FlowMeta | None:
    """The ``flow.json`` in ``folder``; None when there is none or it is damaged (a video
    whose record cannot be read counts as not finished)."""
    path = Path(folder) / META_FILE
    try:
        return FlowMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, ISpanError):
        return None
