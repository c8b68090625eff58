"""`ispan hub push`: refusals before anything is sent, and the upload through huggingface_hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.hub import push_model
from ispan_cli.nn import create_model, save_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "m"
    save_model(create_model("istpan_tiny", labels=("a", "b")), folder)
    (folder / "README.md").write_text("---\nlibrary_name: ispan\n---\n# m\n")
    return folder


def test_push_refuses_incomplete_folders(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ISpanError, match="not a Hub repo id"):
        push_model(model_dir, "no-slash")
    (model_dir / "README.md").unlink()
    with pytest.raises(ISpanError, match=r"no README\.md"):
        push_model(model_dir, "acme/m")
    (model_dir / "README.md").write_text("# m\n")
    doc = json.loads((model_dir / "config.json").read_text())
    doc["model"]["num_classes"], doc["model"]["labels"] = 3, ["a", "b", "c"]
    (model_dir / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ISpanError, match=r"does not match its config\.json"):
        push_model(model_dir, "acme/m")


def test_push_error_from_a_real_server_is_one_clear_line(hub_server, model_dir, monkeypatch):
    # olah (the local Hub-compatible server of the pull tests) is read-only: it answers the
    # Hub's repo-creation call with 405. The upload goes through huggingface_hub over real HTTP
    # and the refusal comes back as one ISpanError naming the call.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub_server.endpoint)
    with pytest.raises(ISpanError, match=r"push to acme/pushed failed: .*405.*/api/repos/create"):
        push_model(model_dir, "acme/pushed")


def test_push_through_the_hub_api(hub_server, model_dir, monkeypatch) -> None:
    from huggingface_hub import constants

    from tests.hub.conftest import free_port
    from tests.hub.upload_server import UploadServer

    mirrors = hub_server.log.parent / "mirrors"
    (model_dir / "stray.bin").write_bytes(b"pickle")  # never uploaded
    with UploadServer(mirrors, free_port()) as upload:
        monkeypatch.setattr(constants, "ENDPOINT", upload.endpoint)
        pushed = push_model(model_dir, "acme/tiny", message="first")
    assert pushed.revision == "main" and len(pushed.commit) == 40
    assert upload.requests[-1] == "commit main ['README.md', 'config.json', 'model.safetensors']"
    # the commit holds exactly the folder's three files, byte for byte, and nothing else
    import subprocess

    repo = mirrors / "models" / "acme" / "tiny"

    def show(path: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"{pushed.commit}:{path}"],
            capture_output=True,
            check=True,
        ).stdout

    for name in ("config.json", "model.safetensors", "README.md"):
        assert show(name) == (model_dir / name).read_bytes(), name
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", pushed.commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "stray.bin" not in listed
