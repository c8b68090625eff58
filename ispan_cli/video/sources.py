"""What a video input string names: a local file, a remote file (http/https/ftp), a live stream
(rtsp/rtmp/udp/srt/...), or a webcam; and how to talk about it safely.

Torch- and PyAV-free: the command line and the records use it before any decoder is imported.
Credentials in URLs (``rtsp://user:pass@host/...``) are masked in every text meant for people or
records (:attr:`Source.display`); only :attr:`Source.target` (what FFmpeg opens) keeps them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ispan_cli.errors import ISpanError
from ispan_cli.limits import VIDEO_TIMEOUT

# Remote files: finite, seekable when the server honours range requests.
REMOTE_SCHEMES = ("http", "https", "ftp")
# Live: no end, no seeking; classified as a rolling timeline.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "udp", "srt", "rtp", "tcp")
WEBCAM_PREFIX = "webcam:"
# http(s) URLs that name a live stream rather than a file: HLS playlists
LIVE_SUFFIXES = (".m3u8",)
# FFmpeg's read/connect timeout option for each protocol, in microseconds. RTSP names it
# ``timeout`` (``stimeout`` before FFmpeg 5); the others ``rw_timeout`` (every protocol honours
# it through the generic AVIOContext layer).
_TIMEOUT_OPTION = {"rtsp": "timeout", "rtsps": "timeout"}
# http(s) files: the most bytes read through to reach a later frame instead of a range request
SHORT_SEEK_BYTES = 1 << 20
DEFAULT_TIMEOUT = VIDEO_TIMEOUT  # seconds, without --timeout: a dead server never hangs a job

_default_timeout: list[float | None] = [None]


@dataclass(frozen=True)
class Source:
    """One video input.

    kind: ``file`` | ``remote`` | ``live`` | ``webcam``. target: what FFmpeg opens (keeps any
    credentials); display: the same with credentials masked (records, logs, errors).
    """

    kind: str
    target: str
    display: str
    scheme: str = ""
    format: str | None = None  # an FFmpeg input format to force (v4l2 for webcams)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """A source without an end: it is classified as a rolling timeline."""
        return self.kind in ("live", "webcam")

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


def mask_credentials(text: str) -> str:
    """``scheme://user:secret@host/x`` -> ``scheme://user:***@host/x`` (text without a URL as is).

    Also masks password-like query parameters (``?password=``, ``token=``, ``key=``...).
    """
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        if user and colon:
            netloc = f"{user}:***@{host}"
        elif userinfo:  # a password alone, or a name alone (often a token: TOKEN@host)
            netloc = f"***@{host}"
        # empty (udp://@:1234, FFmpeg's "receive on every address"): nothing to hide
    query = re.sub(
        r"(?i)\b(pass(word)?|pwd|token|key|secret|auth|signature|sig)=[^&]*", r"\1=***", parts.query
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_in(text: str, source: Source) -> str:
    """``text`` with the source's raw target (as FFmpeg quotes it) replaced by its display."""
    out = text.replace(source.target, source.display) if source.target else text
    return re.sub(r"\w+://\S+", lambda m: mask_credentials(m.group(0)), out)


def parse_source(text: str) -> Source:
    """The kind of input ``text`` names (no I/O: a missing file is still a ``file``)."""
    text = str(text)
    if text.lower().startswith(WEBCAM_PREFIX):
        return webcam_source(text[len(WEBCAM_PREFIX) :], text)
    if re.fullmatch(r"/dev/video\d+", text):
        return webcam_source(text, text)
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if match:
        scheme = match.group(1).lower()
        display = mask_credentials(text)
        if scheme in REMOTE_SCHEMES and _is_playlist(text):
            return Source("live", text, display, scheme)  # HLS: a live playlist, no end
        if scheme in REMOTE_SCHEMES:
            return Source("remote", text, display, scheme)
        if scheme in LIVE_SCHEMES:
            return Source("live", text, display, scheme)
        if scheme == "file":
            path = urlsplit(text).path
            return Source("file", path, path, "file")
        known = ", ".join(f"{s}://" for s in REMOTE_SCHEMES + LIVE_SCHEMES)
        from ispan_cli.video.errors import VideoError

        raise VideoError(
            f"{display}: unknown URL scheme {scheme}://; give a file path, webcam:N, or one of: "
            f"{known}"
        )
    return Source("file", text, text)


def _is_playlist(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(LIVE_SUFFIXES)


def webcam_source(device: str, text: str) -> Source:
    """``webcam:0`` / ``/dev/video0``: a camera through v4l2 (Linux), avfoundation (macOS) or
    dshow (Windows)."""
    device = device.strip()
    if sys.platform == "darwin":
        return Source("webcam", device, text, "webcam", "avfoundation")
    if sys.platform.startswith("win"):
        return Source("webcam", f"video={device}", text, "webcam", "dshow")
    path = f"/dev/video{device}" if device.isdigit() else device
    return Source("webcam", path, text, "webcam", "v4l2")


def set_default_timeout(seconds: float | None) -> None:
    """The network timeout every source opened afterwards in this process uses (``--timeout``);
    None: :data:`DEFAULT_TIMEOUT`."""
    _default_timeout[0] = seconds


def network_timeout(seconds: float | None = None) -> float:
    """``seconds``, else the process default (``--timeout``), else :data:`DEFAULT_TIMEOUT`."""
    if seconds is not None:
        return seconds
    return _default_timeout[0] if _default_timeout[0] is not None else DEFAULT_TIMEOUT


def ffmpeg_options(source: Source, timeout: float | None = None) -> dict[str, str]:
    """The FFmpeg options to open ``source`` with: the protocol's timeout (microseconds), TCP
    for RTSP (RTP over UDP loses packets on a busy machine), range requests over reading
    through for far seeks in HTTP files."""
    options = dict(source.options)
    if source.kind in ("file", "webcam"):
        return options
    micros = str(int(network_timeout(timeout) * 1e6))
    options[_TIMEOUT_OPTION.get(source.scheme, "rw_timeout")] = micros
    if source.kind == "remote" and source.scheme in ("http", "https"):
        # A gap FFmpeg reads through rather than ask for a new range: by default as large as
        # the TCP receive window, which grows to tens of MB on a fast link, so sampling 8
        # frames of a long file would read most of it; a new request costs a round trip.
        options.setdefault("short_seek_size", str(SHORT_SEEK_BYTES))
    if source.scheme in ("rtsp", "rtsps"):
        options.setdefault("rtsp_transport", "tcp")
    if source.scheme in ("rtmp", "rtmps", "rtmpt"):
        options.setdefault("rw_timeout", micros)
    if source.kind == "live":
        # start from the newest data rather than a buffered backlog: latency over completeness;
        # and probe briefly (FFmpeg's 5 s default analysis delays the first frame by as much)
        options.setdefault("fflags", "nobuffer")
        options.setdefault("analyzeduration", "500000")
        options.setdefault("probesize", "65536")
    return options


def is_live_input(text: str) -> bool:
    """Whether an input names a live source (a stream URL or a camera), without raising."""
    try:
        return parse_source(text).live
    except ISpanError:  # an unknown scheme: not live (the decoder says what is wrong)
        return False
