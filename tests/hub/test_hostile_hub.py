"""A hostile Hub must not make ispan write outside the Hub cache, and what a hostile or damaged
cache holds must neither be used nor break `ispan models list`.

The server is tests/hub/hostile_hub.py: the endpoints huggingface_hub calls, answering with a
commit or an ETag that is a path (``../../../../<tmp>/outside/x``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.hub import resolve_model
from ispan_cli.hub_cache import list_cached_models
from ispan_cli.model_folder import sha256_file

from .hostile_hub import GOOD_COMMIT, REPO, HostileHub, cli_env, ispan, make_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("served") / "m")


def _climb(target: Path) -> str:
    """A relative path that leads from any folder of the cache to ``target``."""
    return "../" * 40 + str(target).lstrip("/")


def _pull(hub: HostileHub, cache: Path, spec: str = REPO, **kwargs):
    kwargs.setdefault("offline", False)
    return resolve_model(spec, cache_dir=cache, endpoint=hub.endpoint, token=False, **kwargs)


def _files_outside(root: Path, cache: Path) -> list[Path]:
    return [p for p in root.rglob("*") if not p.is_dir() and not p.is_relative_to(cache)]


def test_honest_answers_download_the_model(model_dir, tmp_path):
    # the fixture is a working Hub: the refusals below come from the hostile values alone
    with HostileHub(model_dir) as hub:
        got = _pull(hub, tmp_path / "cache")
    assert got.revision == GOOD_COMMIT and got.path.is_relative_to(tmp_path / "cache")
    assert got.sha256 == sha256_file(model_dir / "model.safetensors")


HOSTILE = {
    # where the path goes: (HostileHub argument, what the error names)
    "revision-commit": ("commit", "commit"),
    "x-repo-commit-header": ("head_commit", "X-Repo-Commit"),
    "file-etag": ("etag", "ETag"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_path_for_a_commit_or_etag_is_refused_before_anything_is_written(
    model_dir, tmp_path, case
):
    argument, named = HOSTILE[case]
    cache, target = tmp_path / "cache", tmp_path / "outside" / "x"
    hostile = _climb(target)
    with HostileHub(model_dir, **{argument: hostile}) as hub, pytest.raises(ISpanError) as err:
        _pull(hub, cache)
    message = str(err.value)
    assert named in message and "refused before anything was written" in message
    assert "HF_ENDPOINT" in message  # what to check
    # huggingface_hub would have written outside/x.json (a commit) or outside/x (an ETag)
    assert not target.parent.exists()
    assert _files_outside(tmp_path, cache) == []
    # and nothing in the cache refers to the hostile value, for a later run to follow
    for path in cache.rglob("*"):
        assert "outside" not in path.name
        if path.is_file() and not path.is_symlink():
            assert "outside" not in path.read_text(errors="replace")


def test_plain_huggingface_hub_does_write_outside_the_cache(model_dir, tmp_path):
    # The attack is real: without ispan's client, huggingface_hub follows the hostile commit.
    # (If a later huggingface_hub refuses it by itself, this control has nothing left to show.)
    from huggingface_hub import snapshot_download

    target = tmp_path / "outside" / "x"
    # it fails later, after writing
    with HostileHub(model_dir, commit=_climb(target)) as hub, contextlib.suppress(Exception):
        snapshot_download(REPO, cache_dir=tmp_path / "cache", endpoint=hub.endpoint, token=False)
    if not (tmp_path / "outside" / "x.json").exists():
        pytest.skip("this huggingface_hub no longer writes outside its cache for such a commit")


def test_the_cli_refuses_with_one_error_line(model_dir, tmp_path):
    target = tmp_path / "outside" / "x"
    with HostileHub(model_dir, commit=_climb(target)) as hub:
        env = cli_env(hub.endpoint, tmp_path / "home")
        code, out, err, _ = ispan("models", "info", REPO, env=env)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the Hub at ")
    assert "commit '../../" in lines[0] and "40 hexadecimal characters" in lines[0]
    assert not target.parent.exists()


def test_a_revision_that_is_a_path_is_refused_before_any_request(model_dir, tmp_path):
    with HostileHub(model_dir) as hub:
        with pytest.raises(ISpanError, match="not a branch, tag or commit name"):
            _pull(hub, tmp_path / "cache", spec=f"{REPO}@../../../outside/x")
        assert hub.requests == []
    assert not (tmp_path / "outside").exists()


# -- a cache that a hostile server (through an older ispan) or damage left behind ---------------


def _config(**model) -> str:
    base = {"arch": "istpan", "backbone": "tiny", "num_classes": 2}
    return json.dumps({"format": "ispan", "model": {**base, **model}})


def _cached_repo(cache: Path, repo_id: str, files: dict[str, str | Path], ref: str | None = None):
    """A repo in the Hub cache layout: snapshots/<commit>/<file> (text, or a link to a path)."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / GOOD_COMMIT
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, Path):
            (snapshot / name).symlink_to(content)
        else:
            (snapshot / name).write_text(content)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(ref or GOOD_COMMIT)
    return storage


@pytest.fixture
def damaged_cache(model_dir, tmp_path) -> Path:
    """acme/good (downloaded), and three entries the old code left, or that a crash leaves."""
    cache = tmp_path / "cache"
    with HostileHub(model_dir) as hub:
        _pull(hub, cache, spec="acme/good")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(model_dir / "config.json", outside / "config.json")
    weights = "not weights"
    # its files are links out of the cache (what a hostile ETag made huggingface_hub write)
    _cached_repo(
        cache,
        "acme/links-out",
        {"config.json": outside / "config.json", "model.safetensors": weights},
    )
    # a config that is not what ispan writes: the listing used to crash on int("lots")
    _cached_repo(
        cache,
        "acme/bad-config",
        {
            "config.json": _config(num_classes="lots", arch="[red]boom[/red]"),
            "model.safetensors": weights,
        },
    )
    # refs/main names a commit that is a path: huggingface_hub's scan skips the repo as damaged
    _cached_repo(
        cache,
        "acme/bad-ref",
        {"config.json": _config(), "model.safetensors": weights},
        ref=_climb(outside / "x"),
    )
    return cache


def test_models_list_lists_damaged_entries_with_their_reason(damaged_cache, tmp_path):
    env = cli_env("http://127.0.0.1:9", tmp_path / "home", HF_HUB_CACHE=str(damaged_cache))
    code, out, err, _ = ispan("models", "list", "--format", "json", env=env)
    assert code == 0, err
    hub = {e["repo_id"]: e for e in json.loads(out)["hub"]}
    assert set(hub) == {"acme/good", "acme/links-out", "acme/bad-config", "acme/bad-ref"}
    assert hub["acme/good"]["problem"] is None
    assert "config.json points outside the cache" in hub["acme/links-out"]["problem"]
    assert "num_classes 'lots' is not a count" in hub["acme/bad-config"]["problem"]
    assert hub["acme/bad-ref"]["problem"].startswith("damaged cache entry: ")
    for name in ("acme/links-out", "acme/bad-ref"):
        assert "delete " in hub[name]["problem"]  # what to do about it
    # the table too; a config's text is shown as it is, never as rich markup
    code, out, err, _ = ispan("models", "list", env={**env, "COLUMNS": "250"})
    assert code == 0, err
    assert "[red]boom[/red]" in out and "acme/links-out" in out


def test_a_damaged_cached_entry_is_not_used_offline(damaged_cache, model_dir, tmp_path):
    # links out of the cache: refused, not read from wherever they point
    with pytest.raises(ISpanError, match=r"points outside .* delete "):
        resolve_model("acme/links-out", cache_dir=damaged_cache, offline=True)
    # a ref that is a path is not followed to a snapshot outside the cache
    storage = damaged_cache / "models--acme--bad-ref"
    escape = tmp_path / "escape"
    shutil.copytree(model_dir, escape)
    (storage / "refs" / "main").write_text(_climb(escape))
    with pytest.raises(ISpanError, match="points outside"):
        resolve_model("acme/bad-ref", cache_dir=damaged_cache, offline=True)
    # and the healthy one still loads from the same cache
    assert resolve_model("acme/good", cache_dir=damaged_cache, offline=True).revision


def test_list_cached_models_skips_nothing_it_can_explain(damaged_cache):
    problems = {e.repo_id: e.problem for e in list_cached_models(damaged_cache)}
    assert problems["acme/good"] is None
    assert all(problems[r] for r in ("acme/links-out", "acme/bad-config", "acme/bad-ref"))
