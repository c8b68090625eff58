"""The decoder interface every backend implements.

In a module of its own so the backends import it without importing the factory
(``ispan_cli.video.decoder``) that imports them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ispan_cli.video.info import VideoInfo


class VideoReader(ABC):
    """An open video: its properties, its frame timestamps, and frames fetched by index.

    Frames are uint8 RGB arrays (H, W, 3) in display orientation (rotation applied). Use as a
    context manager, or call :meth:`close`.
    """

    name: str
    path: Path

    @abstractmethod
    def info(self) -> VideoInfo:
        """The probe of this video."""

    @abstractmethod
    def frame_times(self) -> np.ndarray:
        """(N,) float64 presentation time of each frame in seconds, from the first frame."""

    @abstractmethod
    def read(self, indices: Sequence[int], short_side: int | None = None) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as (len(indices), H, W, 3) uint8.

        short_side: scale in the decoder so the shorter display side has this many pixels
        (aspect ratio kept, see :func:`ispan_cli.video.preprocess.scaled_size`).
        """

    def index_at(self, seconds: float) -> int:
        """The frame on screen at ``seconds`` from the first frame (clipped to the video)."""
        times = self.frame_times()
        # Half a microsecond of slack so a printed timestamp maps back to its own frame.
        i = int(np.searchsorted(times, seconds + 5e-7, side="right")) - 1
        return min(max(i, 0), len(times) - 1)

    def read_at(
        self, seconds: Sequence[float], short_side: int | None = None
    ) -> tuple[np.ndarray, list[int]]:
        """Frames on screen at the given times, and their indices."""
        indices = [self.index_at(t) for t in seconds]
        return self.read(indices, short_side), indices

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Releases the file."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
