"""The checks every path goes through, and backend selection (the interface: ``reader.py``).

Backends: ``pyav`` (primary: PyAV wheels bundle FFmpeg; threaded decoding, exact frame index
from the packets) and ``opencv`` (fallback). Both are imported only when a video is opened.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ispan_cli.video.errors import (
    DecoderUnavailableError,
    EmptyVideoError,
    NotAFileError,
    UnreadableVideoError,
    VideoError,
    VideoNotFoundError,
)
from ispan_cli.video.info import VideoInfo
from ispan_cli.video.reader import VideoReader

DECODERS = ("auto", "pyav", "opencv")


def check_video_path(path: str | Path) -> Path:
    """The path as a Path if it names a non-empty regular file this user can read."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VideoNotFoundError(f"{path} does not exist; check the path") from None
    except PermissionError:
        raise UnreadableVideoError(
            f"cannot read {path}: permission denied on a folder in its path"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise NotAFileError(f"{path} is a folder, not a video file; give one of the videos in it")
    if not stat.S_ISREG(st.st_mode):
        # Opening a pipe or device could block forever: refuse before FFmpeg sees it.
        raise NotAFileError(f"{path} is not a regular file (a pipe, socket or device)")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise UnreadableVideoError(
            f"cannot read {path}: permission denied; give this user read access (chmod +r)"
        ) from None
    if st.st_size == 0:
        raise EmptyVideoError(
            f"{path} is empty (0 bytes); the download or copy probably failed, fetch it again"
        )
    return path


def available_decoders() -> dict[str, str | None]:
    """Each backend and why it cannot be used (None when it can)."""
    out: dict[str, str | None] = {}
    for name, module in (("pyav", "av"), ("opencv", "cv2")):
        try:
            __import__(module)
            out[name] = None
        except ImportError as exc:
            out[name] = f"{module} cannot be imported ({exc})"
    return out


def open_video(path: str | Path, decoder: str = "auto", stream: int | None = None) -> VideoReader:
    """Opens a video with the chosen backend; ``auto`` is PyAV, or OpenCV without PyAV.

    stream: the container's stream index to read (``ispan probe`` lists them); None: the video
    stream ffmpeg would choose (the largest picture, preferring the default disposition).
    """
    if decoder not in DECODERS:
        raise VideoError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
    if stream is not None and decoder == "opencv":
        raise VideoError(
            "--stream needs --decoder pyav (OpenCV always reads the stream FFmpeg picks)"
        )
    path = check_video_path(path)
    if decoder in ("auto", "pyav"):
        try:
            from ispan_cli.video.pyav_backend import PyAVReader
        except ImportError as exc:
            if decoder == "pyav":
                raise DecoderUnavailableError(
                    f"--decoder pyav needs PyAV, which cannot be imported ({exc}); "
                    "pip install av, or use --decoder opencv"
                ) from exc
        else:
            return PyAVReader(path, stream=stream)
    try:
        from ispan_cli.video.opencv_backend import OpenCVReader
    except ImportError as exc:
        raise DecoderUnavailableError(
            f"no video decoder can be imported (PyAV or OpenCV): {exc}; "
            "pip install av opencv-python-headless"
        ) from exc
    return OpenCVReader(path)


def probe(path: str | Path, decoder: str = "auto", stream: int | None = None) -> VideoInfo:
    """Duration, frame rate, frame count, codec, display size and more for one video."""
    with open_video(path, decoder, stream) as reader:
        return reader.info()
