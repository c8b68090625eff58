"""Real servers on 127.0.0.1 for the live and remote source tests, started by the tests.

- :class:`RangeServer`: HTTP with ``Range`` requests (``http.server`` answers whole files only),
  counting the requests and bytes it serves, optionally answering a fixed status (404, 401).
- :func:`silent_server`: accepts connections and never sends a byte.
- :class:`RtmpServer`: FFmpeg as an RTMP server (``-listen 1``) streaming a file in real time.
  The bundled FFmpeg's RTSP *muxer* has no listen mode (``-rtsp_flags listen`` is for the RTSP
  demuxer, a receiving server), so RTMP is the live protocol FFmpeg alone can serve.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RangeServer:
    """Serves the files of ``root`` with single-range ``Range`` support.

    ranges=False: a server without range support (answers every GET with the whole file, no
    ``Accept-Ranges``), so a client can only read in order. ``served`` holds one
    ``(Range header or None, bytes written)`` per GET, counted as each chunk is written to a
    socket with a small send buffer, so it is close to what the client read, not what the
    request asked for (FFmpeg asks for ``bytes=N-`` and hangs up once it has what it needs).
    """

    CHUNK = 16 * 1024

    def __init__(self, root: Path, status: int | None = None, ranges: bool = True) -> None:
        self.root = Path(root)
        self.requests: list[str | None] = []  # the Range header of each GET (None: whole)
        self.served: list[list] = []  # [Range header, bytes written] per GET
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                asked = self.headers.get("Range")
                record = [asked, 0]
                with server._lock:
                    server.requests.append(asked)
                    server.served.append(record)
                if status is not None:
                    self.send_response(status)
                    if status == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="x"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = server.root / self.path.split("?")[0].lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start, end = 0, size - 1
                match = re.fullmatch(r"bytes=(\d*)-(\d*)", asked or "") if ranges else None
                if match:
                    if match.group(1):
                        start = int(match.group(1))
                        end = int(match.group(2)) if match.group(2) else size - 1
                    else:
                        start = size - int(match.group(2))
                    end = min(end, size - 1)
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                if ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                with open(path, "rb") as f:
                    f.seek(start)
                    left = end - start + 1
                    while left > 0:
                        chunk = f.read(min(server.CHUNK, left))
                        try:
                            self.wfile.write(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            return  # FFmpeg closes a connection it no longer needs (a seek)
                        left -= len(chunk)
                        with server._lock:
                            record[1] += len(chunk)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                conn, addr = super().get_request()
                # a small send buffer: bytes the client never reads stay on disk, not in flight
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                return conn, addr

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def bytes_sent(self) -> int:
        """Bytes written to clients over all requests."""
        with self._lock:
            return sum(n for _, n in self.served)

    def reset(self) -> None:
        """Forgets the requests counted so far."""
        with self._lock:
            self.requests.clear()
            self.served.clear()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class silent_server:
    """Accepts TCP connections and never answers; ``port``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> silent_server:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


def require_ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("the ffmpeg program is not installed (it serves the live streams)")
    return exe


class RtmpServer:
    """``ffmpeg -re -stream_loop -1 -i VIDEO ... -f flv -listen 1 rtmp://127.0.0.1:PORT/live/s``.

    Re-encodes with x264 zerolatency and a keyframe a second, so a client joining at any time
    decodes within a second. ``start``/``stop`` can be called again (a restart, same port).
    """

    def __init__(self, video: Path, port: int | None = None, loop: bool = True) -> None:
        self.exe = require_ffmpeg()
        self.video = Path(video)
        self.port = port or free_port()
        self.loop = loop
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/s"

    def start(self) -> RtmpServer:
        loop = ["-stream_loop", "-1"] if self.loop else []
        cmd = [
            self.exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *loop,
            "-i", str(self.video), "-an", "-c:v", "libx264", "-preset", "ultrafast",
            "-tune", "zerolatency", "-g", "25", "-f", "flv", "-listen", "1", self.url,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # listening once a connect would not be refused
            if self.proc.poll() is not None:
                raise RuntimeError(f"ffmpeg exited with {self.proc.returncode}")
            if _listening(self.port):
                break
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> RtmpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _listening(port: int) -> bool:
    # /proc/net/tcp lists the listening socket without connecting (a probe connection would be
    # taken by ffmpeg as its one client)
    try:
        text = Path("/proc/net/tcp").read_text()
    except OSError:
        time.sleep(0.5)
        return True
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in text.splitlines()[1:]
    )
