"""Which frame is where: presentation timestamps, keyframes, and the plan for fetching frames.

A frame's index is its position in presentation order. Backends build a FrameIndex once per file
(PyAV from the packets, without decoding) and plan every fetch with :func:`plan_fetch`: decode
forward through nearby frames, seek to the preceding keyframe when the next wanted frame is far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# What a seek costs, in decoded frames: flushing the decoder, repositioning the demuxer and
# refilling the frame-threading pipeline. A rough figure: it only decides between two keyframes
# a few frames apart; on the files of benchmarks/decode.py any value from 1 to 64 gives the same
# plans, since wanted frames there are either within one GOP or many GOPs apart.
SEEK_COST_FRAMES = 8


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps (in ``time_base`` units, sorted) and keyframe flags per frame."""

    pts: np.ndarray  # (N,) int64, strictly increasing
    keyframe: np.ndarray  # (N,) bool
    time_base: Fraction

    def __post_init__(self) -> None:
        if len(self.pts) != len(self.keyframe):
            raise ValueError("pts and keyframe must have the same length")
        if len(self.pts) and not self.keyframe[0]:
            # Decoding always starts somewhere: treat the first frame as a seek point.
            keys = self.keyframe.copy()
            keys[0] = True
            object.__setattr__(self, "keyframe", keys)

    @classmethod
    def from_packets(
        cls, pts: Sequence[int], keyframe: Sequence[bool], time_base: Fraction
    ) -> FrameIndex:
        """Sorts packets (decode order) into presentation order; drops duplicate timestamps."""
        pts_arr = np.asarray(pts, dtype=np.int64)
        key_arr = np.asarray(keyframe, dtype=bool)
        order = np.argsort(pts_arr, kind="stable")
        pts_arr, key_arr = pts_arr[order], key_arr[order]
        keep = np.ones(len(pts_arr), dtype=bool)
        keep[1:] = pts_arr[1:] != pts_arr[:-1]
        return cls(pts_arr[keep], key_arr[keep], time_base)

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    def times(self) -> np.ndarray:
        """(N,) float64 seconds of each frame, counted from the first frame."""
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    def frame_duration(self) -> float:
        """Typical seconds between frames (median), used for the last frame's duration."""
        if self.num_frames < 2:
            return 0.0
        return float(np.median(np.diff(self.pts))) * float(self.time_base)

    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one."""
        if not self.num_frames:
            return 0.0
        return float(self.times()[-1]) + self.frame_duration()

    def is_variable_rate(self) -> bool:
        """True when frame intervals differ by more than timestamp rounding explains."""
        if self.num_frames < 3:
            return False
        diffs = np.diff(self.pts)
        median = float(np.median(diffs))
        # Timestamps in 1/1000 s units round 29.97 fps to 33 and 34: allow 2 ticks or 5%.
        tolerance = max(2.0, 0.05 * median)
        return bool(np.abs(diffs - median).max() > tolerance)

    def lookup(self, pts: int) -> int | None:
        """Index of the frame with exactly this timestamp, or None."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < self.num_frames and self.pts[i] == pts else None

    def lookup_packet(self, packet) -> int | None:
        """Index of the frame a demuxed packet holds (None: no timestamp or not listed)."""
        pts = packet.pts if packet.pts is not None else packet.dts
        return None if pts is None else self.lookup(pts)

    def subset(self, keep: np.ndarray) -> FrameIndex:
        """The index restricted to frames ``keep`` (sorted positions), renumbered."""
        return FrameIndex(self.pts[keep], self.keyframe[keep], self.time_base)

    def keyframe_indices(self) -> np.ndarray:
        return np.flatnonzero(self.keyframe)


@dataclass(frozen=True)
class FetchRun:
    """Decode from ``seek_to`` (a keyframe index; None: continue where decoding stands) up to
    and including ``stop``, keeping the frames in ``wanted``."""

    seek_to: int | None
    stop: int
    wanted: tuple[int, ...]


def plan_fetch(
    wanted: Sequence[int],
    keyframes: np.ndarray,
    position: int,
    seek_cost: int = SEEK_COST_FRAMES,
) -> list[FetchRun]:
    """Plans decoding ``wanted`` frame indices starting from decoder ``position``.

    position: index of the last frame decoded (-1: a fresh decoder, next frame is 0).
    keyframes: sorted indices where decoding can start after a seek.
    Decoding forward from ``position`` to ``w`` costs ``w - position`` frames; seeking costs
    ``w - k + 1`` frames plus ``seek_cost`` (k: the last keyframe at or before ``w``). The plan
    takes the cheaper one for each wanted frame, so near frames share one pass and far ones seek.
    """
    targets = sorted(set(int(w) for w in wanted))
    runs: list[FetchRun] = []
    seek_to: int | None = None
    current: list[int] = []
    for w in targets:
        k = int(keyframes[np.searchsorted(keyframes, w, side="right") - 1])
        forward_ok = w > position and (k <= position + 1 or k - position - 1 <= seek_cost)
        if not forward_ok:
            if current:
                runs.append(FetchRun(seek_to, current[-1], tuple(current)))
            seek_to, current = k, []
        current.append(w)
        position = w
    if current:
        runs.append(FetchRun(seek_to, current[-1], tuple(current)))
    return runs
