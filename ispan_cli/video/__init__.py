"""Video I/O: decoding backends, frame sampling, the one preprocessing definition, writing.

Importing this package loads neither PyAV nor OpenCV nor torch: backends are imported when a
video is opened. ``ispan_cli.video.writer`` (PyAV) is imported on its own.
"""

from ispan_cli.video.decoder import (
    DECODERS,
    available_decoders,
    check_video_path,
    open_video,
    probe,
)
from ispan_cli.video.errors import (
    DecoderUnavailableError,
    EmptyVideoError,
    NotAFileError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    UnreadableVideoError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    VideoTooShortError,
)
from ispan_cli.video.extract import SampledFrames, iter_views, sample_video, save_frames
from ispan_cli.video.info import VideoInfo
from ispan_cli.video.preprocess import (
    PreprocessSpec,
    default_spec,
    preprocess,
    spec_from_config,
)
from ispan_cli.video.reader import VideoReader
from ispan_cli.video.sampling import (
    DenseSampler,
    FrameSampling,
    TSNSampler,
    UniformSampler,
    WindowSampler,
)

__all__ = [
    "DECODERS",
    "DecoderUnavailableError",
    "DenseSampler",
    "EmptyVideoError",
    "FrameSampling",
    "NoVideoStreamError",
    "NotAFileError",
    "NotAVideoError",
    "PreprocessSpec",
    "SampledFrames",
    "TSNSampler",
    "TruncatedVideoError",
    "UniformSampler",
    "UnreadableVideoError",
    "VideoDecodeError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoReader",
    "VideoTooShortError",
    "WindowSampler",
    "available_decoders",
    "check_video_path",
    "default_spec",
    "iter_views",
    "open_video",
    "preprocess",
    "probe",
    "sample_video",
    "save_frames",
    "spec_from_config",
]
