"""Heatmap colour maps by name (OpenCV's); importable without numpy for ``--help``."""

from __future__ import annotations

from enum import Enum


class Colormap(str, Enum):
    turbo = "turbo"
    jet = "jet"
    inferno = "inferno"
    magma = "magma"
    plasma = "plasma"
    viridis = "viridis"
    hot = "hot"


def cv2_colormap(name: str) -> int:
    """The OpenCV COLORMAP_* constant for ``name``."""
    import cv2

    return getattr(cv2, f"COLORMAP_{Colormap(name).name.upper()}")
