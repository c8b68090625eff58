"""Opening network sources with PyAV: one clear error per failure, credentials never shown.

``open_network`` opens any URL or device (remote files, live streams, webcams) with the
protocol's timeout; :class:`RemoteReader` is the file reader over a remote file: FFmpeg reads it
through the network as it goes (no download to disk first), and seeks with HTTP range requests
where the server honours them.

What a remote file costs before its first frame, and why:

- MP4/MOV (``moov`` at the start or the end: FFmpeg fetches the end by a range request) whose
  header the index can be read from (:func:`ispan_cli.video.pyav_open.header_scan`: a frame
  count, and presentation times that follow from the decoding times, i.e. a constant frame rate
  or no reordered frames): the header and the first few frames, then one range request per far
  frame, reading from its keyframe on. Classifying 8 frames of a 2 GB file reads 8 GOPs, not
  2 GB. The frames are the local file's: each decoded frame must carry the timestamp the index
  gives its position (the first 16 are checked at open), and one that does not makes the reader
  read every packet after all and fetch again.
- Everything else (AVI and raw streams, whose frames are counted in decoding order; MKV/WebM,
  whose header has no frame count and whose Cues list keyframes only; fragmented MP4; variable
  rate with B-frames; an edit list that hides frames): every packet is read once to index the
  frames, as for a local file, i.e. the whole file crosses the network before the first frame.
  One ``warning:`` line per URL says so and why (logger ``ispan.files.remote``).
- A server without range requests: FFmpeg can only read on. A seek back fails; from the first
  one on, the reader decodes on from where it stands or from the start of a new request
  (fetches are planned in frame order, so one sampling pass reads the file about once). An MP4
  whose ``moov`` is at the end cannot be read from such a server (FFmpeg has to read past the
  frames to find it): one error says so.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import av
import av.error

from ispan_cli.video.errors import VideoDecodeError, VideoError
from ispan_cli.video.pyav_backend import OPENED, PyAVReader
from ispan_cli.video.pyav_open import Scan, header_scan
from ispan_cli.video.sources import Source, ffmpeg_options, mask_in, network_timeout

log = logging.getLogger("ispan.files.remote")
_noted: set[str] = set()  # URLs already warned about in this process: one line each


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
        self._in_order = False  # the server cannot seek: go back by reading from the start
        try:
            super().__init__(_UrlPath(source.display), stream=stream)
        except VideoDecodeError:
            if not self._in_order:
                raise
            self.close()
            raise NetworkError(
                f"{source.display}: the server does not answer range requests (it cannot seek) "
                "and FFmpeg had to read past the frames to open the file (an MP4 with its index "
                "at the end); serve it from a server with range requests, or move the index to "
                "the front: ffmpeg -i IN -c copy -movflags +faststart OUT.mp4"
            ) from None

    @property  # type: ignore[override]
    def path(self):
        return _UrlPath(self._source.display)

    @path.setter
    def path(self, value) -> None:  # PyAVReader sets it from the argument: keep the URL intact
        pass

    def _open_container(self) -> av.container.InputContainer:
        return open_network(self._source, self._timeout)

    def _index_packets(self) -> Scan:
        assert self._container is not None
        scan, why = header_scan(self._container, self._stream)
        if scan is not None:
            return scan
        _note(self._source, f"{why}, so its frames are indexed by reading the whole file once")
        return super()._index_packets()

    def _rescan(self) -> None:
        _note(self._source, "a frame does not fit the index in its header; reading the whole file")
        super()._rescan()

    def _retry_seek(self) -> bool:
        k, self._failed_seek = self._failed_seek, None
        if k == OPENED and self._scan.from_header:
            # the first packet of a fresh open fails after FFmpeg read the MP4's index: it is
            # at the end, and the server could not take FFmpeg back to the frames
            self._in_order = True
            return False
        if k is None or k == OPENED or self._in_order:
            return False
        # FFmpeg could not go back: the server has no range requests. From now on every fetch
        # decodes on from where it stands, or from the start of a new request.
        self._in_order, self._seekable = True, False
        self._seek(0, reopen=True)
        return True


def _note(source: Source, text: str) -> None:
    if source.display not in _noted:
        _noted.add(source.display)
        log.warning("%s: %s", source.display, text)


class _UrlPath(str):
    """A URL that prints as itself where the readers expect a path (``Path`` would fold the
    ``//``)."""

    @property
    def name(self) -> str:
        return PurePosixPath(self.split("?", 1)[0]).name
