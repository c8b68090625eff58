"""`ispan hub push`: refusals before anything is sent, the upload through huggingface_hub, and the
round trip: push (UploadServer, real huggingface_hub client) -> pull through olah (real client).

The pushes go to UploadServer (the Hub's write API, see upload_server.py), which commits into the
git repos that olah serves; the pulls go to olah, which reads those repos on every request, so a
model pushed by a test can be pulled back at once, by branch name or commit hash.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.hub import HUB_FILES, ResolvedModel, resolve_model
from ispan_cli.hub_push import PushedModel, push_model
from ispan_cli.nn import create_model, load_model, save_model
from ispan_cli.nn.serialization import sha256_file

from .conftest import free_port
from .upload_server import UploadServer, git

LABELS = ("walk", "run", "jump")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "m"
    save_model(create_model("istpan_tiny", labels=("a", "b")), folder)
    (folder / "README.md").write_text("---\nlibrary_name: ispan\n---\n# m\n")
    return folder


def _model_folder(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = create_model("istpan_tiny", labels=LABELS).eval()
    save_model(model, folder, extra={"preprocessing": {"resize": 128, "crop": 112}})
    (folder / "README.md").write_text(
        f"---\nlicense: mit\nlibrary_name: ispan\n---\n# seed {seed}\n"
    )
    return folder


@pytest.fixture
def upload(hub_server) -> Iterator[UploadServer]:
    """The Hub's write API on its own port, committing into the repos olah serves."""
    with UploadServer(hub_server.mirrors, free_port()) as server:
        yield server


@contextmanager
def _pushing_to(server: UploadServer, monkeypatch) -> Iterator[None]:
    """Points push_model (which takes its endpoint from huggingface_hub's constants, as set by
    HF_ENDPOINT) at ``server``, for the pushes inside the block only.

    Scoped on purpose: huggingface_hub builds download URLs from HUGGINGFACE_CO_URL_TEMPLATE,
    fixed at import time, and swaps in an explicit ``endpoint=`` only when that URL starts with
    ``constants.ENDPOINT``. With ENDPOINT left patched, a later pull through olah gets its
    metadata (and the pushed commit's hash) from olah but fetches the files from
    https://huggingface.co, and fails offline, after retries, as "cannot reach the Hub at
    <olah's address>": why pulling a pushed model back "did not work" in a first attempt.
    """
    from huggingface_hub import constants

    with monkeypatch.context() as patch:
        patch.setattr(constants, "ENDPOINT", server.endpoint)
        yield


def _calls(server: UploadServer) -> list[str]:
    """The write calls the server got, create-repo bodies left out (see ``server.created``)."""
    calls = [r for r in server.requests if r != "validate-yaml"]  # the card's metadata check
    return ["create" if r.startswith("create ") else r for r in calls]


def _pull(server, spec: str, cache: Path) -> ResolvedModel:
    # token=False: never send a developer's token to the test server
    return resolve_model(
        spec, cache_dir=cache, endpoint=server.endpoint, token=False, offline=False
    )


@torch.no_grad()
def _logits(folder: Path) -> torch.Tensor:
    clip = torch.rand(2, 8, 3, 112, 112, generator=torch.Generator().manual_seed(123))
    return load_model(folder).eval()(clip)


def _assert_pulled_as_pushed(got: ResolvedModel, pushed: PushedModel, folder: Path) -> None:
    assert got.source == "hub" and got.model_id == pushed.repo_id
    assert got.revision == pushed.commit  # the pushed commit itself, not a stale one
    assert sorted(p.name for p in got.path.iterdir()) == sorted(HUB_FILES)
    for name in HUB_FILES:
        assert (got.path / name).read_bytes() == (folder / name).read_bytes(), name
    assert got.sha256 == sha256_file(folder / "model.safetensors")
    assert torch.equal(_logits(got.path), _logits(folder))


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


def test_push_through_the_hub_api(hub_server, upload, model_dir, monkeypatch) -> None:
    # a repo of its own: pushing into acme/tiny would move the main branch other tests pin
    (model_dir / "stray.bin").write_bytes(b"pickle")  # never uploaded
    with _pushing_to(upload, monkeypatch):
        pushed = push_model(model_dir, "acme/pushed-bytes", message="first")
    assert pushed.revision == "main" and len(pushed.commit) == 40
    assert upload.requests[-1] == "commit main ['README.md', 'config.json', 'model.safetensors']"
    # the commit holds exactly the folder's three files, byte for byte, and nothing else
    repo = hub_server.mirrors / "models" / "acme" / "pushed-bytes"

    def show(path: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"{pushed.commit}:{path}"],
            capture_output=True,
            check=True,
        ).stdout

    for name in ("config.json", "model.safetensors", "README.md"):
        assert show(name) == (model_dir / name).read_bytes(), name
    listed = git(repo, "ls-tree", "--name-only", pushed.commit).split()
    assert "stray.bin" not in listed


def test_pushed_models_come_back_through_olah(hub_server, upload, monkeypatch, tmp_path):
    """push -> pull through olah, for the default branch and a --revision branch, then new
    pushes to both (no stale refs anywhere: not in olah, not in the client's Hub cache)."""
    repo_id = "acme/round-trip"
    folders = [_model_folder(tmp_path / f"seed{seed}", seed) for seed in (0, 1, 2)]
    with _pushing_to(upload, monkeypatch):
        first = push_model(folders[0], repo_id)  # creates the repo
        branch = push_model(folders[1], repo_id, revision="exp")  # creates the branch off main
    assert (first.revision, branch.revision) == ("main", "exp")
    assert [c["_private"] for c in upload.created] == [False, False]  # no --private: public
    git_dir = hub_server.mirrors / "models" / "acme" / "round-trip"
    assert git(git_dir, "rev-parse", "exp^") == first.commit

    cache = tmp_path / "hub-cache"
    main = _pull(hub_server, repo_id, cache)
    exp = _pull(hub_server, f"{repo_id}@exp", cache)
    assert (main.ref, exp.ref) == ("main", "exp")
    _assert_pulled_as_pushed(main, first, folders[0])
    _assert_pulled_as_pushed(exp, branch, folders[1])
    assert main.sha256 != exp.sha256

    # pushes to an existing repo (409, accepted) and an existing branch (409, accepted)
    with _pushing_to(upload, monkeypatch):
        second = push_model(folders[2], repo_id)
        branch_again = push_model(folders[0], repo_id, revision="exp")
    files = "['README.md', 'config.json', 'model.safetensors']"
    assert _calls(upload) == [
        "create", f"commit main {files}",
        "create", "branch exp", f"commit exp {files}",
        "create", f"commit main {files}",
        "create", "branch exp", f"commit exp {files}",
    ]  # fmt: skip
    assert git(git_dir, "rev-parse", "exp^") == branch.commit  # exp kept its history
    # same cache: both branches have moved on since they were pulled
    _assert_pulled_as_pushed(_pull(hub_server, repo_id, cache), second, folders[2])
    _assert_pulled_as_pushed(_pull(hub_server, f"{repo_id}@exp", cache), branch_again, folders[0])
    # the first commit stays reachable by its hash, from the cache it was pulled into
    assert _pull(hub_server, f"{repo_id}@{first.commit}", cache).path == main.path


def _classify(video: Path, model: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify", str(video), "--model", model,
         "-k", "3", "-q", "--format", "jsonl"],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    return record


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_cli_push_to_a_branch_then_classify_from_hub(hub_server, upload, tmp_path):
    """`ispan hub push --revision exp --private` (HF_ENDPOINT: the upload server), then
    `ispan classify --model acme/cli-pushed@exp` (HF_ENDPOINT: olah): same top-k as the folder."""
    from tests.video.videogen import write_pattern_video

    folder = _model_folder(tmp_path / "model", seed=3)
    pushed = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "hub", "push", str(folder), "acme/cli-pushed",
         "--revision", "exp", "--private", "--message", "from the CLI"],
        capture_output=True, text=True, timeout=180,
        env=hub_server.clean_env(tmp_path / "push-home", HF_ENDPOINT=upload.endpoint),
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    said = r"pushed 3 file\(s\) to acme/cli-pushed@exp: commit ([0-9a-f]{40})"
    match = re.search(said, pushed.stdout)
    assert match, pushed.stdout
    commit = match[1]
    # --private reached the server in the create-repo request
    (created,) = upload.created
    assert created["name"] in ("cli-pushed", "acme/cli-pushed") and created["_private"] is True
    assert _calls(upload) == [
        "create",
        "branch exp",
        "commit exp ['README.md', 'config.json', 'model.safetensors']",
    ]
    git_dir = hub_server.mirrors / "models" / "acme" / "cli-pushed"
    assert git(git_dir, "rev-parse", "exp") == commit
    assert git(git_dir, "log", "-1", "--format=%s", commit) == "from the CLI"

    video = write_pattern_video(tmp_path / "clip.mp4", "libx264", 30, width=170, height=128)
    # the folder in this process (CliRunner: same command, no second interpreter start-up)
    from typer.testing import CliRunner

    from ispan_cli.app import app

    ran = CliRunner().invoke(
        app, ["classify", str(video), "--model", str(folder), "-k", "3", "-q", "-f", "jsonl"]
    )
    assert ran.exit_code == 0, ran.output
    (local,) = [json.loads(line) for line in ran.stdout.splitlines()]
    hub = _classify(video, "acme/cli-pushed@exp", hub_server.clean_env(tmp_path / "pull-home"))
    assert local["model"]["source"] == "folder"
    assert hub["model"]["source"] == "hub" and hub["model"]["id"] == "acme/cli-pushed"
    assert hub["model"]["revision"] == commit
    assert hub["model"]["sha256"] == local["model"]["sha256"]
    assert hub["model"]["sha256"] == sha256_file(folder / "model.safetensors")
    assert [t["label"] for t in hub["topk"]] == [t["label"] for t in local["topk"]]
    for ours, theirs in zip(hub["topk"], local["topk"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-6)
