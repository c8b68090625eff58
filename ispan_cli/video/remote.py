"""Opening network sources with PyAV: one clear error per failure, credentials never shown.

``open_network`` opens any URL or device (remote files, live streams, webcams) with the
protocol's timeout; :class:`RemoteReader` is the file reader (exact packet index, seeking) over
a remote file: FFmpeg reads it through the network as it goes (no download to disk first), and
seeks with HTTP range requests where the server honours them.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import av
import av.error

from ispan_cli.video.errors import VideoError
from ispan_cli.video.pyav_backend import PyAVReader
from ispan_cli.video.sources import Source, ffmpeg_options, mask_in, network_timeout


class NetworkError(VideoError):
    """A network source that cannot be reached or read (refused, unknown host, HTTP error,
    timeout)."""


def open_network(source: Source, timeout: float | None = None) -> av.container.InputContainer:
    """Opens ``source`` (not a local file) for reading; raises NetworkError saying what to do."""
    seconds = network_timeout(timeout)
    try:
        return av.open(
            source.target,
            format=source.format,
            options=ffmpeg_options(source, seconds),
            # PyAV's interrupt callback: also ends a server that accepts and never sends,
            # where a protocol has no timeout option of its own
            timeout=(seconds, seconds),
            metadata_errors="replace",
        )
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise network_error(source, exc, seconds) from None


def network_error(source: Source, exc: BaseException, timeout: float) -> VideoError:
    """The one-line error for a failed open or read of ``source``."""
    where = source.display
    if isinstance(exc, av.error.HTTPNotFoundError):
        return NetworkError(f"{where}: the server answered 404 Not Found; check the URL")
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return NetworkError(
            f"{where}: the server answered 401 Unauthorized; put the user and password in the "
            "URL (scheme://user:password@host/...)"
        )
    if isinstance(exc, av.error.HTTPForbiddenError):
        return NetworkError(f"{where}: the server answered 403 Forbidden; check your access")
    if isinstance(exc, (av.error.HTTPClientError, av.error.HTTPServerError)):
        return NetworkError(f"{where}: the server answered an HTTP error ({_text(exc, source)})")
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(
            f"{where}: connection refused; is the server running and is the port right?"
        )
    if isinstance(exc, (TimeoutError, av.error.ExitError)):
        return NetworkError(
            f"{where}: no answer within {timeout:g} s; check that the server is up and sending, "
            "or raise --timeout"
        )
    if isinstance(exc, av.error.ProtocolNotFoundError):
        return NetworkError(
            f"{where}: the FFmpeg bundled with PyAV has no {source.scheme}:// support; use "
            "another protocol (rtsp://, rtmp://, http://) or a PyAV built against a full FFmpeg"
        )
    if isinstance(exc, av.error.FFmpegError) and exc.errno == 5 and source.kind != "webcam":
        # FFmpeg reports a failed name lookup as a plain EIO
        return NetworkError(f"{where}: cannot reach the host (unknown host or no route); check it")
    if source.kind == "webcam":
        return VideoError(
            f"cannot open camera {where} ({_text(exc, source)}); check that it exists and that "
            "this user may use it (on Linux: the video group)"
        )
    return NetworkError(f"cannot read {where} ({_text(exc, source)})")


def _text(exc: BaseException, source: Source) -> str:
    message = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return mask_in(str(message).strip(), source)


class RemoteReader(PyAVReader):
    """The PyAV file reader over a remote file (``http(s)://``, ``ftp://``).

    ``path`` is the masked URL, for messages and records.
    """

    def __init__(self, source: Source, stream: int | None = None, timeout: float | None = None):
        self._source = source
        self._timeout = timeout
        super().__init__(_UrlPath(source.display), stream=stream)

    @property  # type: ignore[override]
    def path(self):
        return _UrlPath(self._source.display)

    @path.setter
    def path(self, value) -> None:  # PyAVReader sets it from the argument: keep the URL intact
        pass

    def _open_container(self) -> av.container.InputContainer:
        return open_network(self._source, self._timeout)


class _UrlPath(str):
    """A URL that prints as itself where the readers expect a path (``Path`` would fold the
    ``//``)."""

    @property
    def name(self) -> str:
        return PurePosixPath(self.split("?", 1)[0]).name
