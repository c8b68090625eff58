"""Pulling models from a real Hub-compatible server (olah, see conftest.py) on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.hub import resolve_model
from ispan_cli.hub_cache import list_cached_models
from ispan_cli.model_folder import sha256_file
from ispan_cli.nn import load_model

from .conftest import free_port


def _clip() -> torch.Tensor:
    generator = torch.Generator().manual_seed(123)
    return torch.rand(2, 8, 3, 112, 112, generator=generator)  # (B, K, 3, H, W)


@torch.no_grad()
def _logits(model) -> torch.Tensor:
    return model.eval()(_clip())


def _pull(server, spec: str, cache: Path, **kwargs):
    # token=False: never send a developer's token to the test server
    kwargs.setdefault("offline", False)
    return resolve_model(spec, cache_dir=cache, endpoint=server.endpoint, token=False, **kwargs)


def test_pull_by_name_gets_the_default_branch_and_its_weights(hub_server, tmp_path):
    got = _pull(hub_server, "acme/tiny", tmp_path)
    assert got.source == "hub" and got.model_id == "acme/tiny" and got.ref == "main"
    assert got.revision == hub_server.commits["tiny@main"]
    assert got.path.is_relative_to(tmp_path) and got.path.name == got.revision
    # the three files of a model repo, nothing else
    assert sorted(p.name for p in got.path.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert got.sha256 == sha256_file(got.path / "model.safetensors")
    assert got.display == f"acme/tiny@{got.revision[:12]}"
    assert torch.equal(_logits(load_model(got.path)), _logits(hub_server.models["tiny@main"]))


def test_pinned_revisions_load_their_own_weights(hub_server, tmp_path):
    v1 = _pull(hub_server, "acme/tiny@v1", tmp_path)
    by_hash = _pull(hub_server, f"acme/tiny@{hub_server.commits['tiny@v1']}", tmp_path)
    main = _pull(hub_server, "acme/tiny@main", tmp_path)
    assert v1.revision == by_hash.revision == hub_server.commits["tiny@v1"]
    assert v1.ref == "v1" and by_hash.path == v1.path
    assert main.revision == hub_server.commits["tiny@main"] != v1.revision
    assert main.sha256 != v1.sha256
    old, new = _logits(load_model(v1.path)), _logits(load_model(main.path))
    assert torch.equal(old, _logits(hub_server.models["tiny@v1"]))
    assert torch.equal(new, _logits(hub_server.models["tiny@main"]))
    assert not torch.allclose(old, new)


def test_offline_uses_the_cached_copy(hub_server, tmp_path):
    online = _pull(hub_server, "acme/tiny@v1", tmp_path)
    offline = _pull(hub_server, "acme/tiny@v1", tmp_path, offline=True)
    assert offline == online
    # a server that went away: huggingface_hub falls back to the cache as well
    gone = resolve_model(
        "acme/tiny@v1", cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{free_port()}", token=False
    )
    assert gone == online


def test_offline_without_a_cached_copy_says_how_to_get_one(hub_server, tmp_path):
    _pull(hub_server, "acme/tiny@v1", tmp_path)  # v1 is cached, main is not
    with pytest.raises(ISpanError) as info:
        _pull(hub_server, "acme/tiny", tmp_path, offline=True)
    message = str(info.value)
    assert "acme/tiny is not in the Hub cache" in message and str(tmp_path) in message
    assert "HF_HUB_OFFLINE" in message and "run once online" in message


def test_missing_repo_is_named(hub_server, tmp_path):
    with pytest.raises(
        ISpanError, match=r"Hub repo acme/nope was not found on http://127\.0\.0\.1"
    ):
        _pull(hub_server, "acme/nope", tmp_path)


def test_missing_revision_lists_the_ones_that_exist(hub_server, tmp_path):
    with pytest.raises(ISpanError) as info:
        _pull(hub_server, "acme/tiny@v9", tmp_path)
    assert "acme/tiny" in str(info.value) and "has no revision 'v9'" in str(info.value)
    assert "(branches and tags: main, v1)" in str(info.value)
    with pytest.raises(ISpanError, match="has no commit '0000000000"):
        _pull(hub_server, "acme/tiny@" + "0" * 40, tmp_path)


def test_unreachable_server_without_cache_is_explained(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ISpanError) as info:
        resolve_model("acme/tiny", cache_dir=tmp_path, endpoint=endpoint, token=False)
    message = str(info.value)
    assert message.startswith(f"cannot reach the Hub at {endpoint} (ConnectError")
    assert "set HF_ENDPOINT to a Hub or mirror you can reach" in message


def test_pickle_only_repo_is_refused_and_never_downloaded(hub_server, tmp_path):
    with pytest.raises(ISpanError) as info:
        _pull(hub_server, "acme/pickled", tmp_path)
    message = str(info.value)
    assert "has no model.safetensors; it has pytorch_model.bin" in message
    assert "pickle weights are refused" in message
    downloaded = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert "pytorch_model.bin" not in downloaded
    # the one big file of the repo is the pickle: no blob of that size reached the cache
    sizes = {p.stat().st_size for p in (tmp_path / "models--acme--pickled" / "blobs").iterdir()}
    assert max(sizes) < 10_000


def test_repo_of_another_library_is_refused(hub_server, tmp_path):
    with pytest.raises(ISpanError, match=r'acme/other@\w{12} is not an ispan model: .*"format"'):
        _pull(hub_server, "acme/other", tmp_path)


def test_progress_reports_the_bytes_downloaded(hub_server, tmp_path):
    seen: list[tuple[int, int | None]] = []
    got = _pull(
        hub_server, "acme/tiny", tmp_path, progress=lambda done, total: seen.append((done, total))
    )
    total = sum(p.stat().st_size for p in got.path.iterdir())
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cached_ispan_models_are_listed(hub_server, tmp_path):
    assert list_cached_models(tmp_path / "nothing-here") == []
    _pull(hub_server, "acme/tiny@v1", tmp_path)
    _pull(hub_server, "acme/tiny", tmp_path)
    with pytest.raises(ISpanError):
        _pull(hub_server, "acme/pickled", tmp_path)  # config cached, weights refused
    with pytest.raises(ISpanError):
        _pull(hub_server, "acme/other", tmp_path)  # cached, but not ispan: not listed
    entries = {(e.repo_id, e.revision): e for e in list_cached_models(tmp_path)}
    assert sorted(entries) == sorted(
        [
            ("acme/pickled", hub_server.commits["pickled@main"]),
            ("acme/tiny", hub_server.commits["tiny@main"]),
            ("acme/tiny", hub_server.commits["tiny@v1"]),
        ]
    )
    v1 = entries["acme/tiny", hub_server.commits["tiny@v1"]]
    assert v1.refs == ("v1",) and v1.arch == "istpan" and v1.num_classes == 3
    assert v1.problem is None and v1.size_on_disk > 100_000
    assert entries["acme/pickled", hub_server.commits["pickled@main"]].problem == (
        "no model.safetensors"
    )


def _ispan(server, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.clean_env(home, **env),
    )


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_cli_reads_the_hf_variables(hub_server, tmp_path):
    """HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE reach huggingface_hub through the real CLI."""
    online = _ispan(hub_server, tmp_path, "models", "info", "acme/tiny@v1", "--format", "json")
    assert online.returncode == 0, online.stderr
    doc = json.loads(online.stdout)
    assert doc["source"] == "hub" and doc["revision"] == hub_server.commits["tiny@v1"]
    assert doc["model"]["labels"] == ["walk", "run", "jump"]
    assert Path(doc["path"]).is_relative_to(tmp_path / "hub")  # HF_HOME/hub is the cache
    assert doc["sha256"] == sha256_file(Path(doc["path"]) / "model.safetensors")

    cached = _ispan(hub_server, tmp_path, "models", "info", "acme/tiny@v1", "-f", "json",
                    HF_HUB_OFFLINE="1")  # fmt: skip
    assert cached.returncode == 0, cached.stderr
    assert json.loads(cached.stdout)["revision"] == doc["revision"]

    missing = _ispan(hub_server, tmp_path, "models", "info", "acme/tiny", HF_HUB_OFFLINE="1")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr + missing.stdout
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: acme/tiny is not in the Hub cache")


def test_models_list_shows_cached_hub_models(hub_server, tmp_path, monkeypatch):
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from ispan_cli.app import app

    v1 = _pull(hub_server, "acme/tiny@v1", tmp_path)
    # the cache folder huggingface_hub derived from HF_HOME at import (see the subprocess test)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("ISPAN_MODELS_DIR", str(tmp_path / "no-zoo"))
    runner = CliRunner()
    listing = runner.invoke(app, ["models", "list", "--format", "json"])
    assert listing.exit_code == 0, listing.output
    doc = json.loads(listing.stdout)
    assert doc["hub_cache"] == str(tmp_path)
    assert [(e["repo_id"], e["revision"], e["refs"], e["problem"]) for e in doc["hub"]] == [
        ("acme/tiny", v1.revision, ["v1"], None)
    ]
    table = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert f"acme/tiny@{v1.revision[:12]}" in table.stdout and "v1" in table.stdout
