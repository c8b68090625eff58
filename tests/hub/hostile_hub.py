"""A hostile Hub on 127.0.0.1: a small ``http.server`` answering the endpoints huggingface_hub
calls to download a model (revision info, tree listing, HEAD and GET of each file) with whatever a
test asks for: a commit that is a path, an answer that never comes, an answer that trickles.

It serves one repo, ``evil/model`` (any org/name is answered the same way), holding the files of a
real ispan model folder, so that with honest answers the download works (``test_hostile_hub``
checks that first: a refusal then comes from the hostile value, not from a broken fixture).
Every request is recorded as ``"METHOD /path"`` in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

REPO = "evil/model"
GOOD_COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = ("config.json", "model.safetensors", "README.md")

# where a behaviour applies: the revision info, the tree listing, a file's HEAD, a file's GET
Where = str  # "info" | "tree" | "head" | "file"
# "hang": accept and never answer; "trickle": the whole answer, status line first, one byte per
# interval; "trickle-body": headers at once, then the body one byte per interval
Behaviour = str


def git_blob_id(data: bytes) -> str:
    """The git blob hash the Hub reports as a file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HostileHub:
    def __init__(
        self,
        model_dir: Path,
        *,
        commit: str = GOOD_COMMIT,
        head_commit: str | None = None,
        etag: str | None = None,
        behaviour: dict[Where, Behaviour] | None = None,
        interval: float = 1.0,
    ) -> None:
        """commit: the sha of the revision info (and X-Repo-Commit unless head_commit is given);
        etag: every file's ETag instead of its blob id; behaviour: what goes wrong, and where."""
        self.files = {name: (model_dir / name).read_bytes() for name in FILES}
        self.commit = commit
        self.head_commit = head_commit or commit
        self.etag = etag
        self.behaviour = behaviour or {}
        self.interval = interval
        self.requests: list[str] = []
        self.first_seen: dict[str, float] = {}  # step -> time.monotonic() of its first request
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()  # ends the hanging and trickling answers
        self.server.shutdown()
        self.server.server_close()

    def saw(self, where: Where) -> bool:
        """Whether a request of that kind came in."""
        return any(_where(r.split(" ", 1)[0], r.split(" ", 1)[1]) == where for r in self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def _answer(self) -> None:
                path = urlsplit(self.path).path
                hub.requests.append(f"{self.command} {path}")
                where = _where(self.command, path)
                hub.first_seen.setdefault(where, time.monotonic())
                status, headers, body = hub._response(where, path)
                how = hub.behaviour.get(where)
                if how == "hang":
                    hub.stopping.wait()
                    self.close_connection = True
                    return
                head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
                data = (head + "\r\n").encode() + (b"" if self.command == "HEAD" else body)
                try:
                    if how == "trickle":
                        self._trickle(data)
                    elif how == "trickle-body":
                        self.wfile.write(data[: len(data) - len(body)])
                        self.wfile.flush()
                        self._trickle(body)
                    else:
                        self.wfile.write(data)
                except OSError:  # the client gave up: that is what the tests want
                    self.close_connection = True

            def _trickle(self, data: bytes) -> None:
                for i in range(len(data)):
                    if hub.stopping.wait(hub.interval if i else 0):
                        break
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                self.close_connection = True

        return Handler

    def _response(self, where: Where, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        json_type = ("Content-Type", "application/json")
        if where == "info":
            siblings = [{"rfilename": name} for name in FILES]
            doc = {"id": REPO, "modelId": REPO, "sha": self.commit, "siblings": siblings}
            return self._ok(json.dumps(doc).encode(), [json_type])
        if where == "tree":
            entries = [
                {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": name}
                for name, data in self.files.items()
            ]
            return self._ok(json.dumps(entries).encode(), [json_type])
        if where in ("head", "file"):
            name = path.rsplit("/", 1)[-1]
            if name not in self.files:
                body = json.dumps({"error": "Entry not found"}).encode()
                return 404, [json_type, ("Content-Length", str(len(body)))], body
            data = self.files[name]
            etag = self.etag or git_blob_id(data)
            headers = [("X-Repo-Commit", self.head_commit), ("ETag", f'"{etag}"')]
            return self._ok(data, headers)
        body = json.dumps({"error": "Not found"}).encode()
        return 404, [json_type, ("Content-Length", str(len(body)))], body

    @staticmethod
    def _ok(body: bytes, headers: list[tuple[str, str]]) -> tuple[int, list, bytes]:
        return 200, [*headers, ("Content-Length", str(len(body)))], body


def _where(method: str, path: str) -> Where | None:
    if re.match(r"^/api/models/[^/]+/[^/]+/revision/", path):
        return "info"
    if re.match(r"^/api/models/[^/]+/[^/]+/tree/", path):
        return "tree"
    if re.match(r"^/[^/]+/[^/]+/resolve/", path):
        return "head" if method == "HEAD" else "file"
    return None


def make_model(folder: Path) -> Path:
    """A small real ispan model folder, with its card: what the hostile Hub serves."""
    import torch

    from ispan_cli.nn import create_model, save_model

    torch.manual_seed(0)
    save_model(create_model("istpan_tiny", labels=("walk", "run")), folder)
    (folder / "README.md").write_text("---\nlibrary_name: ispan\n---\n# hostile\n")
    return folder


def cli_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """Environment for an ``ispan`` subprocess: this Hub, a private HF_HOME, no proxy, no token."""
    proxies = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING", "ISPAN_DEBUG")) and k not in proxies
    }
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), NO_PROXY="127.0.0.1,localhost")
    env.update(extra)
    return env


def ispan(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str, float]:
    """Runs the ``ispan`` CLI in a subprocess: (exit status, stdout, stderr, seconds taken)."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Polls ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
