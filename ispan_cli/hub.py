"""From a model spec to a local model folder: a folder path, a zoo name, or a Hub repo.

A Hub repo is ``org/name`` or ``org/name@revision`` (branch, tag or full commit hash). Hub files
come through ``huggingface_hub.snapshot_download`` into the standard cache, so the standard
variables apply and are read by huggingface_hub itself: ``HF_ENDPOINT`` (another Hub, e.g. a
mirror), ``HF_HOME`` / ``HF_HUB_CACHE`` (where the cache lives), ``HF_HUB_OFFLINE`` (no network:
use the cache) and ``HF_TOKEN`` (private and gated repos). Only ``config.json``,
``model.safetensors`` and ``README.md`` are downloaded: pickle weights are never fetched.

Importing this module imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ispan_cli.errors import ISpanError
from ispan_cli.zoo import find_local_model, zoo_dir

# Kept in step with ispan_cli.nn.serialization (not imported: that would import torch).
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

Source = Literal["folder", "zoo", "hub"]
# Called with (bytes downloaded, total bytes or None) while Hub files download.
ProgressCallback = Callable[[int, int | None], None]

# org/name as the Hub spells it: letters, digits, '-', '_', '.'; no leading/trailing '-' or '.'.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?"
_HUB_SPEC = re.compile(rf"^(?P<repo>{_REPO_PART}/{_REPO_PART})(?:@(?P<revision>[^\s@]+))?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on local disk and where it came from."""

    path: Path  # folder holding config.json and model.safetensors
    model_id: str  # Hub repo id, zoo name, or the folder path
    source: Source
    revision: str | None  # Hub commit hash the files come from; None for local folders
    sha256: str  # of model.safetensors: identifies the weights whatever the source
    ref: str | None = None  # the Hub revision asked for (branch, tag or commit), None if local

    @property
    def display(self) -> str:
        """``org/name@<12-char commit>`` for Hub models, else the model id."""
        return f"{self.model_id}@{self.revision[:12]}" if self.revision else self.model_id


@dataclass(frozen=True)
class HubSettings:
    """Where Hub models come from and go to, as huggingface_hub reads them from the environment."""

    endpoint: str
    cache_dir: Path
    offline: bool


@dataclass(frozen=True)
class CachedHubModel:
    """One revision of an ispan model in the Hub cache."""

    repo_id: str
    revision: str  # commit hash
    refs: tuple[str, ...]  # branches/tags that pointed at it when it was downloaded
    path: Path
    arch: str
    backbone: str
    num_classes: int
    size_on_disk: int
    problem: str | None  # why it cannot be loaded, None when it looks complete


def hub_settings() -> HubSettings:
    """The endpoint, cache folder and offline flag huggingface_hub uses in this process."""
    from huggingface_hub import constants

    return HubSettings(
        endpoint=constants.ENDPOINT.rstrip("/"),
        cache_dir=Path(constants.HF_HUB_CACHE),
        offline=bool(constants.HF_HUB_OFFLINE),
    )


def parse_hub_spec(spec: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` for ``org/name[@revision]``, None when ``spec`` is not one."""
    match = _HUB_SPEC.match(spec.strip())
    if match is None or ".." in match["repo"]:
        return None
    return match["repo"], match["revision"]


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith("/") or "\\" in spec


def resolve_model(
    spec: str,
    *,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    offline: bool | None = None,
    progress: ProgressCallback | None = None,
) -> ResolvedModel:
    """Finds the model named by ``spec``, downloading it from the Hub when needed.

    In order: an existing folder, a folder in the zoo, a Hub repo ``org/name[@revision]``.
    cache_dir, endpoint, token, offline: override huggingface_hub's environment-derived defaults
    (``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``).
    Config and weights are checked against each other later, strictly, by ``load_model``.
    """
    folder = find_local_model(spec)
    if folder is not None:
        if Path(spec).expanduser().is_dir():  # an existing folder wins over a zoo name
            return _local(folder, str(folder), "folder")
        return _local(folder, spec, "zoo")
    parsed = None if _looks_like_path(spec) else parse_hub_spec(spec)
    if parsed is None:
        if _looks_like_path(spec):
            raise ISpanError(f"model folder {spec} does not exist")
        raise ISpanError(
            f"no model {spec!r}: not a folder, not in the zoo ({zoo_dir()}), and not a Hub repo "
            "(org/name or org/name@revision)"
        )
    repo_id, revision = parsed
    return _resolve_hub(
        repo_id,
        revision,
        cache_dir=cache_dir,
        endpoint=endpoint,
        token=token,
        offline=offline,
        progress=progress,
    )


def _local(folder: Path, model_id: str, source: Source) -> ResolvedModel:
    from ispan_cli.nn.serialization import sha256_file

    _check_ispan_config(folder / CONFIG_FILE, where=str(folder))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        raise ISpanError(f"{folder} has no {WEIGHTS_FILE}{_pickle_hint(pickles)}")
    return ResolvedModel(
        path=folder, model_id=model_id, source=source, revision=None, sha256=sha256_file(weights)
    )


def _resolve_hub(
    repo_id: str,
    revision: str | None,
    *,
    cache_dir: str | Path | None,
    endpoint: str | None,
    token: str | bool | None,
    offline: bool | None,
    progress: ProgressCallback | None,
) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from ispan_cli.nn.serialization import sha256_file

    settings = hub_settings()
    endpoint = (endpoint or settings.endpoint).rstrip("/")
    cache = Path(cache_dir) if cache_dir is not None else settings.cache_dir
    offline = settings.offline if offline is None else offline
    ref = revision or "main"
    name = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = snapshot_download(
            repo_id,
            repo_type="model",
            revision=ref,
            cache_dir=cache,
            endpoint=endpoint,
            token=token,
            local_files_only=offline,
            allow_patterns=list(HUB_FILES),
            tqdm_class=_progress_bar_class(progress),
        )
    except GatedRepoError as exc:  # before RepositoryNotFoundError: it is a subclass
        raise ISpanError(
            f"{repo_id} on {endpoint} is gated: accept its conditions at {endpoint}/{repo_id} and "
            "set HF_TOKEN (or run `hf auth login`) with a token of that account"
        ) from exc
    except RevisionNotFoundError as exc:
        refs = _refs(repo_id, endpoint, token)
        raise ISpanError(_no_revision(repo_id, ref, endpoint, refs)) from exc
    except RepositoryNotFoundError as exc:
        # Some Hub-compatible servers answer "repository not found" for an unknown revision:
        # when the repo shows its branches, the revision is what to fix.
        refs = _refs(repo_id, endpoint, token) if revision is not None else None
        if refs is not None:
            raise ISpanError(_no_revision(repo_id, ref, endpoint, refs)) from exc
        raise ISpanError(
            f"Hub repo {repo_id} was not found on {endpoint}: check the name (org/name), or, if it "
            "is private, set HF_TOKEN (or run `hf auth login`) with a token that can read it"
        ) from exc
    except IncompleteSnapshotError as exc:
        raise ISpanError(
            f"the cached copy of {name} in {cache} is incomplete and {endpoint} cannot be used "
            "to complete it: connect and run again (without HF_HUB_OFFLINE)"
        ) from exc
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__
        if offline or isinstance(cause, OfflineModeIsEnabled):
            raise ISpanError(
                f"{name} is not in the Hub cache ({cache}) and offline mode is on "
                "(HF_HUB_OFFLINE): run once online to download it, e.g. "
                f"`ispan models info {name}`, or point HF_HOME at a cache that has it"
            ) from exc
        if isinstance(cause, HfHubHTTPError) and _status(cause) == 404:
            # a commit hash skips the revision look-up; its file listing is what 404s
            refs = _refs(repo_id, endpoint, token)
            raise ISpanError(_no_revision(repo_id, ref, endpoint, refs)) from exc
        reason = f"{type(cause).__name__}: {_first_line(cause)}" if cause else _first_line(exc)
        raise ISpanError(
            f"cannot reach the Hub at {endpoint} ({reason}) and {name} is not in the cache "
            f"({cache}): check the network, or set HF_ENDPOINT to a Hub or mirror you can reach"
        ) from exc
    except HfHubHTTPError as exc:
        raise ISpanError(
            f"the Hub at {endpoint} refused {name} (HTTP {_status(exc)}: {_first_line(exc)}); "
            "check HF_TOKEN and HF_ENDPOINT"
        ) from exc
    except HFValidationError as exc:
        raise ISpanError(f"{name} is not a valid Hub repo: {_first_line(exc)}") from exc
    except OSError as exc:  # e.g. a cache folder that cannot be written
        raise ISpanError(f"cannot store {name} in the Hub cache {cache}: {exc}") from exc
    except Exception as exc:
        # huggingface_hub lets some transport errors (e.g. a broken proxy) through unwrapped;
        # they come from its HTTP library, whatever that is in this version.
        if not type(exc).__module__.startswith(("httpx", "httpcore")):
            raise
        raise ISpanError(
            f"cannot reach the Hub at {endpoint} ({type(exc).__name__}: {_first_line(exc)}): "
            "check the network, proxy variables and HF_ENDPOINT"
        ) from exc

    folder = Path(folder)
    commit = folder.name  # snapshots/<commit hash>: the revision these files really come from
    where = f"Hub repo {repo_id}@{commit[:12]}"
    _check_ispan_config(folder / CONFIG_FILE, where=where)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        listing = [] if offline else _remote_files(repo_id, commit, endpoint, token)
        pickles = sorted(f for f in listing if Path(f).suffix in PICKLE_SUFFIXES)
        raise ISpanError(f"{where} has no {WEIGHTS_FILE}{_pickle_hint(pickles)}")
    return ResolvedModel(
        path=folder,
        model_id=repo_id,
        source="hub",
        revision=commit,
        sha256=sha256_file(weights),
        ref=ref,
    )


def list_cached_models(cache_dir: str | Path | None = None) -> list[CachedHubModel]:
    """Every revision of an ispan model in the Hub cache (``config.json`` with format ispan).

    Other models in the cache (transformers, diffusers...) are left out. Sorted by repo id.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache = Path(cache_dir) if cache_dir is not None else hub_settings().cache_dir
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            snapshot = Path(rev.snapshot_path)
            try:
                doc = json.loads((snapshot / CONFIG_FILE).read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(doc, dict) or doc.get("format") != "ispan":
                continue
            model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
            problem = None if (snapshot / WEIGHTS_FILE).is_file() else f"no {WEIGHTS_FILE}"
            entries.append(
                CachedHubModel(
                    repo_id=repo.repo_id,
                    revision=rev.commit_hash,
                    refs=tuple(sorted(rev.refs)),
                    path=snapshot,
                    arch=str(model.get("arch", "?")),
                    backbone=str(model.get("backbone", "?")),
                    num_classes=int(model.get("num_classes", 0) or 0),
                    size_on_disk=rev.size_on_disk,
                    problem=problem,
                )
            )
    return entries


def _check_ispan_config(path: Path, where: str) -> None:
    # JSON only (no torch): a clear refusal before anything tries to build a model from it.
    if not path.is_file():
        raise ISpanError(f"{where} has no {CONFIG_FILE}: it is not an ispan model")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ISpanError(f"{where}: {CONFIG_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != "ispan":
        raise ISpanError(
            f'{where} is not an ispan model: its {CONFIG_FILE} lacks "format": "ispan" '
            "(ispan reads only models saved by ispan)"
        )


def _pickle_hint(pickles: list[str]) -> str:
    if not pickles:
        return ""
    return (
        f"; it has {', '.join(pickles)}, but pickle weights are refused because loading them "
        "can run arbitrary code: convert them to safetensors"
    )


def _progress_bar_class(progress: ProgressCallback | None):
    """A tqdm class that draws nothing (library code does not print) and reports bytes."""
    from tqdm.auto import tqdm

    state: dict = {"bar": None}

    class _Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = kwargs.get("initial", 0) or 0
            # huggingface_hub opens a bytes-transferred bar first; follow that one only.
            if kwargs.get("unit") == "B" and state["bar"] is None:
                state["bar"] = self

        def update(self, n=1):
            self._done += n or 0
            if progress is not None and state["bar"] is self:
                progress(int(self._done), int(self.total) if self.total else None)
            return super().update(n)

    return _Bar


def _refs(repo_id: str, endpoint: str, token: str | bool | None) -> list[str] | None:
    """Branch and tag names of a repo, None when the server does not show them."""
    from huggingface_hub import HfApi

    try:
        refs = HfApi(endpoint=endpoint, token=token).list_repo_refs(repo_id)
    except Exception:  # any failure means we cannot tell
        return None
    return sorted([b.name for b in refs.branches] + [t.name for t in refs.tags])


def _no_revision(repo_id: str, ref: str, endpoint: str, refs: list[str] | None) -> str:
    known = f" (branches and tags: {', '.join(refs)})" if refs else ""
    kind = "commit" if _COMMIT.match(ref) else "revision"
    return (
        f"Hub repo {repo_id} on {endpoint} has no {kind} {ref!r}{known}: use an existing branch, "
        f"tag or full commit hash after '@', or drop '@{ref}' for the default branch"
    )


def _remote_files(repo_id: str, commit: str, endpoint: str, token: str | bool | None) -> list[str]:
    from huggingface_hub import HfApi

    try:
        return HfApi(endpoint=endpoint, token=token).list_repo_files(repo_id, revision=commit)
    except Exception:  # only used to explain a refusal; without it the message is shorter
        return []


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class PushedModel:
    """Where ``push_model`` put a model folder."""

    repo_id: str
    revision: str  # branch committed to
    commit: str  # the new commit's hash
    url: str
    files: int


def push_model(
    folder: str | Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
) -> PushedModel:
    """Uploads a model folder (config.json, model.safetensors, README.md) to a Hub repo in one
    commit, creating the repo (and the ``revision`` branch) if missing. Only those three files
    go up: never pickles or stray files. The endpoint and token come from the environment
    (``HF_ENDPOINT``, ``HF_TOKEN`` or ``hf auth login``), as for downloads."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    if parse_hub_spec(repo_id) is None or "@" in repo_id:
        raise ISpanError(f"{repo_id!r} is not a Hub repo id; write org/name (and --revision)")
    if not folder.is_dir():
        raise ISpanError(f"{folder} is not a folder; give a model folder (config.json, ...)")
    _check_ispan_config(folder / CONFIG_FILE, str(folder))
    if not (folder / CARD_FILE).is_file():
        raise ISpanError(f"{folder} has no {CARD_FILE}: every pushed model needs its model card")
    from ispan_cli.nn import load_model

    load_model(folder)  # refuses weights that do not match config.json, before anything goes up
    settings = hub_settings()
    if settings.offline:
        raise ISpanError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    api = HfApi(endpoint=settings.endpoint)
    branch = revision or "main"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        # exactly the three files, in one commit: never a stray file of the folder
        ops = [
            CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in HUB_FILES
        ]
        info = api.create_commit(
            repo_id,
            ops,
            commit_message=message or f"Upload {folder.name} with ispan",
            revision=branch,
        )
    except HfHubHTTPError as exc:
        status = _status(exc)
        hints = {401: "log in (hf auth login) or set HF_TOKEN", 403: "no write access to it"}
        hint = hints.get(status or 0, "see the message")
        raise ISpanError(f"push to {repo_id} failed: {_first_line(exc)} ({hint})") from exc
    except OSError as exc:
        raise ISpanError(f"cannot reach {settings.endpoint} to push ({exc})") from exc
    return PushedModel(repo_id, branch, info.oid, info.commit_url, len(HUB_FILES))
