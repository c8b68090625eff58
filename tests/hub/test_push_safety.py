"""`ispan hub push` uploads regular files of the model folder only: a symbolic link (a README.md
that links to a private key, say) is refused, naming the file, before any request is sent.

Pushes go to the Hub's write API on 127.0.0.1 (tests/hub/upload_server.py), through the real
huggingface_hub client; each test then checks that the linked file's content never reached it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.hub import HUB_FILES
from ispan_cli.hub_push import _open_regular, push_model

from .conftest import free_port
from .hostile_hub import cli_env, ispan, make_model
from .upload_server import UploadServer

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA not a real key\n"


@pytest.fixture
def upload(tmp_path) -> Iterator[UploadServer]:
    with UploadServer(tmp_path / "mirrors", free_port()) as server:
        yield server


@pytest.fixture
def model_dir(tmp_path) -> Path:
    return make_model(tmp_path / "m")


@pytest.fixture
def private_key(tmp_path) -> Path:
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_bytes(SECRET)
    return key


@pytest.fixture
def to_server(upload, monkeypatch):
    # push_model takes its endpoint from huggingface_hub's constants (HF_ENDPOINT)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", upload.endpoint)
    return upload


@pytest.mark.parametrize("name", HUB_FILES)
def test_a_symlinked_file_is_refused_naming_it(model_dir, tmp_path, to_server, name):
    # the link's target is the file's own content, so only the link itself can be the reason
    real = tmp_path / "elsewhere" / name
    real.parent.mkdir()
    shutil.move(model_dir / name, real)
    (model_dir / name).symlink_to(real)
    with pytest.raises(ISpanError) as err:
        push_model(model_dir, "acme/pushed")
    message = str(err.value)
    assert str(model_dir / name) in message and "symbolic link" in message
    assert str(real) in message  # where it points, so the user sees what would have gone up
    assert to_server.requests == [] and to_server.created == []


def test_a_readme_linking_to_a_private_key_never_reaches_the_server(
    model_dir, private_key, upload, tmp_path
):
    (model_dir / "README.md").unlink()
    (model_dir / "README.md").symlink_to(private_key)
    env = cli_env(upload.endpoint, tmp_path / "hf-home")
    code, out, err, _ = ispan("hub", "push", str(model_dir), "acme/leak", env=env)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "README.md" in lines[0] and "symbolic link" in lines[0]
    assert upload.requests == []
    for path in (tmp_path / "mirrors").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes()


def test_a_link_inside_the_folder_is_refused_too(model_dir, to_server):
    # no exception for links that stay inside: a link is never what goes up
    shutil.move(model_dir / "README.md", model_dir / "card.md")
    (model_dir / "README.md").symlink_to("card.md")
    with pytest.raises(ISpanError, match=r"README\.md is a symbolic link"):
        push_model(model_dir, "acme/pushed")
    assert to_server.requests == []


def test_a_readme_that_is_not_a_regular_file_is_refused(model_dir, to_server):
    (model_dir / "README.md").unlink()
    os.mkfifo(model_dir / "README.md")  # reading it would block forever
    with pytest.raises(ISpanError, match=r"README\.md is not a regular file"):
        push_model(model_dir, "acme/pushed")
    assert to_server.requests == []


def test_a_file_swapped_for_a_link_after_the_check_is_not_read(model_dir, private_key):
    link = model_dir / "README.md"
    link.unlink()
    link.symlink_to(private_key)
    with pytest.raises(ISpanError, match="symbolic link"), _open_regular(link):
        pass


def test_regular_files_push(model_dir, upload, tmp_path):
    # the control: the same folder, with plain files, goes up (so the refusals above are the
    # links', not a broken server's)
    env = cli_env(upload.endpoint, tmp_path / "hf-home")
    code, out, err, _ = ispan("hub", "push", str(model_dir), "acme/plain", env=env)
    assert code == 0, err
    assert out.startswith("pushed 3 file(s) to acme/plain@main: commit ")
    assert any(r.startswith("commit main") for r in upload.requests)
