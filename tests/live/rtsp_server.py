"""A real RTSP server on 127.0.0.1 for the RTSP tests: GStreamer's gst-rtsp-server.

The bundled FFmpeg's RTSP muxer cannot listen (``-rtsp_flags listen`` belongs to the demuxer,
the receiving side), so the server is GStreamer's, driven through PyGObject by the *system*
Python (``/usr/bin/python3``: python3-gi is a Debian package, not in the venv) in a subprocess
that this module runs as a script. It serves an H.264 MP4 file without re-encoding::

    ( filesrc location=VIDEO ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )

in real time (the server's sinks sync on the file's timestamps). Each client gets its own media,
so every connection starts at the file's first frame; the file is not looped (make it as long
as the test needs). ``login="user:password"``: the server requires it (RTSP Basic auth).
``start``/``stop`` can be called again: a restart on the same port.

Needs: ``apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad``;
:func:`require_rtsp_server` skips the calling test, naming them, where any is missing.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
)
# qtdemux, rtph264pay: plugins-good; h264parse: plugins-bad; filesrc: core
ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")
MOUNT = "/s"

_missing: list[str | None] = []  # the probe's answer, cached: None (all there) or what lacks


def rtsp_server_missing() -> str | None:
    """What is missing for the server (None: nothing), probed once in a subprocess."""
    if not _missing:
        if not Path(SYSTEM_PYTHON).exists():
            _missing.append(f"{SYSTEM_PYTHON} is not installed")
        else:
            probe = subprocess.run(
                [SYSTEM_PYTHON, __file__, "--check"], capture_output=True, text=True, timeout=60
            )
            lines = (probe.stdout + probe.stderr).strip().splitlines()
            _missing.append(None if probe.returncode == 0 else (lines or ["no answer"])[-1])
    return _missing[0]


def require_rtsp_server() -> None:
    """Skips the calling test where GStreamer's RTSP server cannot run here."""
    import pytest

    missing = rtsp_server_missing()
    if missing is not None:
        pytest.skip(f"no RTSP server ({missing}); apt-get install {PACKAGES}")


class RtspServer:
    """GStreamer's RTSP server serving ``video`` at ``rtsp://127.0.0.1:PORT/s``."""

    def __init__(self, video: Path, port: int | None = None, login: str | None = None) -> None:
        from tests.live.servers import free_port

        require_rtsp_server()
        self.video = Path(video)
        self.port = port or free_port()
        self.login = login  # "user:password": the server requires it (Basic auth)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The stream's URL, with the login when the server requires one."""
        userinfo = f"{self.login}@" if self.login else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{MOUNT}"

    def start(self) -> RtspServer:
        """Starts the server; returns once it listens (it says so on stdout)."""
        cmd = [SYSTEM_PYTHON, __file__, str(self.video), str(self.port), self.login or ""]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # killed as a group: nothing of it outlives stop()
        )
        # a restart right after a kill can find the port still held for a moment
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "listening":
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {line.strip() or 'no answer'}")
        return self

    def stop(self) -> None:
        """Kills the server at once (as a crashed camera would go)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                pipe.close()
        self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the server itself: run by the system Python, which has gi (PyGObject), not the venv ---


def _load_gst():
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    lacking = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if lacking:
        raise ImportError(f"GStreamer elements missing: {', '.join(lacking)}")
    return GLib, Gst, GstRtspServer


def _check() -> int:
    try:
        _load_gst()
    except (ImportError, ValueError) as exc:  # ValueError: a typelib gi cannot find
        print(f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def _serve(video: str, port: int, login: str) -> None:
    GLib, Gst, GstRtspServer = _load_gst()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = video.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)  # every client its own media, from the file's first frame
    if login:
        user, password = login.split(":", 1)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth = GstRtspServer.RTSPAuth()
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        role = "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        factory.add_role_from_structure(Gst.Structure.from_string(role)[0])
    server.get_mount_points().add_factory(MOUNT, factory)
    deadline = time.monotonic() + 10
    while True:  # the port may still be held for a moment after a killed run
        try:
            if server.attach(None) > 0:
                break
        except GLib.Error:
            pass
        if time.monotonic() > deadline:
            print(f"cannot listen on 127.0.0.1:{port}", flush=True)
            sys.exit(1)
        time.sleep(0.1)
    print("listening", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(_check())
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
