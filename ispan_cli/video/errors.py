"""Errors for video files ispan cannot use: one type per case, each message says what to do."""

from __future__ import annotations

from ispan_cli.errors import ISpanError


class VideoError(ISpanError):
    """A video file that cannot be used as given."""


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class NotAFileError(VideoError):
    """The path is a directory, a pipe or a device rather than a regular file."""


class UnreadableVideoError(VideoError):
    """The file exists but this user may not read it."""


class EmptyVideoError(VideoError):
    """The file has zero bytes."""


class NotAVideoError(VideoError):
    """FFmpeg does not recognise the contents as a video (or they are a still image)."""


class NoVideoStreamError(VideoError):
    """A media file without a video stream, e.g. audio only."""


class TruncatedVideoError(VideoError):
    """A video container cut short so badly that no frame can be read."""


class VideoDecodeError(VideoError):
    """Frames that the container lists cannot be decoded (damaged data or unsupported codec)."""


class VideoTooShortError(VideoError):
    """Fewer distinct frames than a sampler needs, with repetition switched off."""


class DecoderUnavailableError(VideoError):
    """The chosen decoding backend is not installed or cannot be imported."""
