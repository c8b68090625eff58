"""The checks every path goes through, and backend selection (the interface: ``reader.py``).

Backends: ``pyav`` (primary: PyAV wheels bundle FFmpeg; threaded decoding, exact frame index
from the packets) and ``opencv`` (fallback). Both are imported only when a video is opened.
"""

from __future__ import annotations

import errno
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
    except ValueError:  # a NUL byte, which no path can hold (a list read from find -print0)
        raise UnreadableVideoError(
            f"{str(path)!r} is not a path: it holds a NUL byte; give one path a line"
        ) from None
    except OSError as exc:  # ELOOP (a symbolic link loop), ENAMETOOLONG, EIO...
        loop = exc.errno == errno.ELOOP
        raise UnreadableVideoError(
            f"cannot read {path}: "
            + ("it is a symbolic link loop; point the link at a video" if loop else str(exc))
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


def open_video(
    source: str | Path,
    decoder: str = "auto",
    stream: int | None = None,
    timeout: float | None = None,
    threads: int = 0,
) -> VideoReader:
    """The one way into a video: a local file, or a remote file (``http(s)://``, ``ftp://``).

    ``auto`` is PyAV, or OpenCV without PyAV (local files only). stream: the container's stream
    index to read (``ispan probe`` lists them); None: the video stream ffmpeg would choose (the
    largest picture, preferring the default disposition). timeout: seconds a network source may
    stay silent (default: ``--timeout``, see :func:`ispan_cli.video.sources.network_timeout`).
    threads: FFmpeg's decoding threads for a local file (0: FFmpeg's choice; the thread plan's
    ``codec_threads``). Live streams and cameras have no frame index to read by:
    :func:`open_live` opens those.
    """
    from ispan_cli.video.sources import parse_source

    if decoder not in DECODERS:
        raise VideoError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
    if stream is not None and decoder == "opencv":
        raise VideoError(
            "--stream needs --decoder pyav (OpenCV always reads the stream FFmpeg picks)"
        )
    src = parse_source(str(source)) if not isinstance(source, Path) else None
    if src is not None and src.live:
        raise VideoError(
            f"{src.display} is a live source (a stream or camera) with no end to sample from; "
            "classify it with --window SECONDS (a rolling timeline)"
        )
    if src is not None and src.kind == "remote":
        if decoder == "opencv":
            raise VideoError(f"{src.display}: URLs need --decoder pyav (or auto)")
        try:
            from ispan_cli.video.remote import RemoteReader
        except ImportError as exc:
            raise DecoderUnavailableError(
                f"reading URLs needs PyAV, which cannot be imported ({exc}); pip install av"
            ) from exc
        return RemoteReader(src, stream=stream, timeout=timeout)
    return _open_file(Path(src.target if src is not None else source), decoder, stream, threads)


def open_live(source: str, timeout: float | None = None, short_side: int | None = None):
    """A live source (``rtsp://``, ``rtmp://``, ``udp://``, ``webcam:0``, ``/dev/video0``) as a
    :class:`ispan_cli.video.live.LiveReader` yielding frames as they arrive."""
    from ispan_cli.video.live import LiveReader
    from ispan_cli.video.sources import parse_source

    return LiveReader(parse_source(source), timeout=timeout, short_side=short_side)


def _open_file(path: Path, decoder: str, stream: int | None, threads: int = 0) -> VideoReader:
    """A local file: the file-only checks (exists, regular, readable, not empty), then a
    backend, whose open sniffs a file it cannot read and checks for truncation."""
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
            return PyAVReader(path, threads, stream=stream)
    try:
        from ispan_cli.video.opencv_backend import OpenCVReader
    except ImportError as exc:
        raise DecoderUnavailableError(
            f"no video decoder can be imported (PyAV or OpenCV): {exc}; "
            "pip install av opencv-contrib-python-headless"
        ) from exc
    return OpenCVReader(path)


def probe(path: str | Path, decoder: str = "auto", stream: int | None = None) -> VideoInfo:
    """Duration, frame rate, frame count, codec, display size and more for one video."""
    with open_video(path, decoder, stream) as reader:
        return reader.info()
