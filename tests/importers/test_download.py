"""Downloads against a real HTTP server on 127.0.0.1: resumed with Range, verified by hash."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.importers.download import download

BODY = bytes(range(256)) * 4096  # 1 MiB
PREFIX = hashlib.sha256(BODY).hexdigest()[:8]


class _Handler(BaseHTTPRequestHandler):
    cut_first: bool = False  # the first full answer stops halfway, as a dropped connection does
    ranges: ClassVar[list] = []

    def do_GET(self):
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.removeprefix("bytes=").rstrip("-"))
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(BODY[start : len(BODY) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(BODY[start:])

    def log_message(self, *args):
        pass


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def server(monkeypatch):
    for var in PROXY_VARS:  # the server is on loopback, whatever the developer's shell says
        monkeypatch.delenv(var, raising=False)
    _Handler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_truncated_download_resumes_with_range(server, tmp_path):
    url = f"{server}/tsn_fixture_20200614-{PREFIX}.pth"
    _Handler.cut_first = True
    with pytest.raises(ISpanError, match=r"stopped after \d+ of 1048576 bytes.*resume"):
        download(url, cache=tmp_path, timeout=5)
    (part,) = tmp_path.rglob("*.part")
    kept = part.stat().st_size  # half, or less when the reset reached the client first
    assert 0 < kept <= len(BODY) // 2 and part.read_bytes() == BODY[:kept]
    seen = []
    path = download(url, cache=tmp_path, timeout=5, progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == BODY
    assert _Handler.ranges == [None, f"bytes={kept}-"]  # the second request asked for the rest
    assert seen[-1] == (len(BODY), len(BODY))
    assert download(url, cache=tmp_path) == path and len(_Handler.ranges) == 2  # cached


def test_hash_mismatch_is_refused_and_deleted(server, tmp_path):
    url = f"{server}/tsn_fixture_20200614-deadbeef.pth"
    with pytest.raises(ISpanError, match=f"starts with {PREFIX}, not deadbeef"):
        download(url, cache=tmp_path, timeout=5)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing half-trusted left


def test_the_proxy_environment_is_read_at_each_download(server, tmp_path, monkeypatch):
    # urlopen's process-wide opener keeps the proxies of its first call (torch.hub's, in a test
    # that routes downloads to a dead proxy); a download must follow the environment it runs in.
    url = f"{server}/tsn_fixture_20200614-{PREFIX}.pth"
    with monkeypatch.context() as mp:
        mp.setenv("http_proxy", "http://127.0.0.1:9")
        mp.delenv("no_proxy", raising=False)
        mp.delenv("NO_PROXY", raising=False)
        with pytest.raises(ISpanError, match="Connection refused"):
            download(url, cache=tmp_path, timeout=5)
    assert _Handler.ranges == []  # the request went to the proxy, not to the server
    assert download(url, cache=tmp_path, timeout=5).read_bytes() == BODY


@pytest.mark.slow  # a subprocess that imports torch
def test_cli_reports_a_truncated_download_in_one_line(server, tmp_path):
    import os
    import subprocess
    import sys

    _Handler.cut_first = True
    url = f"{server}/tsn_fixture_20200614-{PREFIX}.pth"
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "models", "import", url, "-o", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ISPAN_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode != 0 and done.stderr.count("error:") == 1, done.stderr
    assert "of 1048576 bytes" in done.stderr and "Traceback" not in done.stderr
