"""What probing a video reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VideoInfo:
    """Properties of a video's first video stream, as a player would show it.

    width/height: display size, after the rotation in the display matrix is applied.
    rotation: clockwise degrees (0, 90, 180, 270) applied to the decoded picture for display.
    num_frames: frames that can actually be read, counted from the packets; container_frames is
    what the container header claims (None when it says nothing).
    duration: seconds from the first frame to the end of the last one.
    variable_frame_rate: None when the backend cannot tell (OpenCV).
    truncated: the file ends before its header says it should; the frames that are there are used.
    stream: the container index of the video stream read (None: unknown, OpenCV);
    video_streams: every video stream of the file (index, codec, size, default), as ffprobe
    numbers them.
    """

    path: str
    decoder: str
    container: str
    codec: str
    pixel_format: str | None
    bit_depth: int | None
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: float
    duration: float
    num_frames: int
    container_frames: int | None
    variable_frame_rate: bool | None
    keyframes: int | None
    has_audio: bool | None
    truncated: bool = False
    warnings: tuple[str, ...] = ()
    stream: int | None = None
    video_streams: tuple[dict[str, Any], ...] = ()

    @property
    def frame_count_source(self) -> str:
        """'container' when the header's count is right, otherwise 'counted'."""
        return "container" if self.container_frames == self.num_frames else "counted"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["warnings"] = list(self.warnings)
        out["video_streams"] = [dict(s) for s in self.video_streams]
        out["frame_count_source"] = self.frame_count_source
        return out
