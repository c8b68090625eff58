"""A real Hub-compatible server on loopback: olah in offline mode, serving local git repos.

olah answers the Hub's HTTP API (repo info, revisions, tree listings, refs, resolve) from git
repositories under ``mirrors/models/<org>/<name>``, so huggingface_hub talks to it exactly as to
huggingface.co. The server starts once per session (about 2 s) on a free 127.0.0.1 port; every
test gets its own empty Hub cache.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from ispan_cli.nn import create_model, save_model
from tests.hub.upload_server import git

ORG = "acme"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class HubServer:
    endpoint: str
    log: Path
    commits: dict[str, str] = field(default_factory=dict)  # "tiny@v1" -> commit hash
    models: dict[str, torch.nn.Module] = field(default_factory=dict)  # "tiny@v1" -> saved model

    @property
    def mirrors(self) -> Path:
        """The folder of the git repos olah serves (``models/<org>/<name>``)."""
        return self.log.parent / "mirrors"

    def clean_env(self, home: Path, **extra: str) -> dict[str, str]:
        """Environment for a subprocess: this server, a private HF_HOME, no proxy, no token."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGING")) and k not in PROXY_VARS
        }
        env.update(HF_ENDPOINT=self.endpoint, HF_HOME=str(home), NO_PROXY="127.0.0.1,localhost")
        env.update(extra)
        return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def _card(title: str) -> str:
    return f"---\nlicense: mit\nlibrary_name: ispan\n---\n# {title}\n"


def _build_repos(mirrors: Path, server: HubServer) -> None:
    labels = ("walk", "run", "jump")
    # acme/tiny: two commits with different weights; v1 tags the first, main is the second.
    tiny = mirrors / "models" / ORG / "tiny"
    tiny.mkdir(parents=True)
    git(tiny, "init", "-q", "-b", "main")
    for seed, ref in ((0, "v1"), (1, "main")):
        torch.manual_seed(seed)
        model = create_model("istpan_tiny", labels=labels).eval()
        save_model(model, tiny, extra={"preprocessing": {"resize": 128, "crop": 112}})
        (tiny / "README.md").write_text(_card(f"tiny, seed {seed}"))
        server.commits[f"tiny@{ref}"] = _commit(tiny, f"weights from seed {seed}")
        server.models[f"tiny@{ref}"] = model
        if ref == "v1":
            git(tiny, "tag", "v1")
    # acme/pickled: an ispan config with pickle weights only.
    pickled = mirrors / "models" / ORG / "pickled"
    pickled.mkdir(parents=True)
    git(pickled, "init", "-q", "-b", "main")
    model = create_model("istpan_tiny", labels=labels)
    save_model(model, pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    (pickled / "README.md").write_text(_card("pickled"))
    server.commits["pickled@main"] = _commit(pickled, "pickle weights")
    # acme/other: safetensors weights, but not an ispan model (another library's config).
    other = mirrors / "models" / ORG / "other"
    other.mkdir(parents=True)
    git(other, "init", "-q", "-b", "main")
    (other / "config.json").write_text('{"model_type": "videomae", "num_labels": 2}\n')
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(other / "model.safetensors"))
    server.commits["other@main"] = _commit(other, "not ispan")


def _wait_until_serving(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    # No proxy, whatever the environment says: the server is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"olah exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"olah did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory) -> HubServer:
    """olah serving acme/tiny (tag v1 + main), acme/pickled and acme/other on 127.0.0.1."""
    pytest.importorskip(
        "olah.server",
        reason="olah (the local Hub-compatible server) is not installed: pip install -e '.[dev]'",
    )
    root = tmp_path_factory.mktemp("olah")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = HubServer(endpoint=endpoint, log=root / "olah.log")
    _build_repos(root / "mirrors", server)
    config = root / "olah.toml"
    # offline: serve the local git repos only, never contact huggingface.co; hf-netloc points at
    # a closed loopback port anyway so that nothing could leave the machine.
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{root / "cache"}"\n'
        f'mirrors-path = ["{root / "mirrors"}"]\n'
        f'mirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
        'hf-scheme = "http"\n'
        f'hf-netloc = "127.0.0.1:{free_port()}"\n'
        f'hf-lfs-netloc = "127.0.0.1:{free_port()}"\n'
        "metadata-cache-ttl = 0\n"
        "[accessibility]\n"
        "offline = true\n"
    )
    with open(server.log, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(root)],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server.clean_env(root / "server-home"),
        )
    try:
        _wait_until_serving(proc, f"{endpoint}/api/models/{ORG}/tiny/revision/main", server.log)
        with pytest.MonkeyPatch.context() as mp:
            # in-process clients must not route loopback traffic through a proxy
            for var in PROXY_VARS:
                mp.delenv(var, raising=False)
            yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def _online_unless_told(monkeypatch):
    # An HF_HUB_OFFLINE=1 in the developer's shell would make huggingface_hub refuse every
    # request in this process; the tests say offline=True explicitly where they mean it.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
