"""From a model spec to a local model folder: a folder path, a zoo name, or a Hub repo.

A Hub repo is ``org/name`` or ``org/name@revision`` (branch, tag or full commit hash). Hub files
come through ``huggingface_hub.snapshot_download`` into the standard cache, so the standard
variables apply and are read by huggingface_hub itself: ``HF_ENDPOINT`` (another Hub, e.g. a
mirror), ``HF_HOME`` / ``HF_HUB_CACHE`` (where the cache lives), ``HF_HUB_OFFLINE`` (no network:
use the cache) and ``HF_TOKEN`` (private and gated repos). Only ``config.json``,
``model.safetensors`` and ``README.md`` are downloaded: pickle weights are never fetched.

Every Hub call goes through ``ispan_cli.hub_http.guarded_hub``: the server's commits and ETags
are checked before huggingface_hub writes anything, and no request outlives the timeout
(``DEFAULT_TIMEOUT``, or ``hub_timeout``/``timeout=``, as ``--timeout`` sets it).

Importing this module imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from ispan_cli.errors import ISpanError
from ispan_cli.hub_http import COMMIT, Failure, HubGuard, guarded_hub, printable, show
from ispan_cli.identity import ModelIdentity
from ispan_cli.model_folder import (
    CARD_FILE,
    CONFIG_FILE,
    PICKLE_SUFFIXES,
    WEIGHTS_FILE,
    pickle_hint,
    pickles_in,
    sha256_file,
)
from ispan_cli.zoo import find_local_model, zoo_dir

# Kept in step with ispan_cli.nn.serialization (not imported: that would import torch).
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)

Source = Literal["folder", "zoo", "hub"]
# Called with (bytes downloaded, total bytes or None) while Hub files download.
ProgressCallback = Callable[[int, int | None], None]

# org/name as the Hub spells it: letters, digits, '-', '_', '.'; no leading/trailing '-' or '.'.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?"
_HUB_SPEC = re.compile(rf"^(?P<repo>{_REPO_PART}/{_REPO_PART})(?:@(?P<revision>[^\s@]+))?$")

# Seconds a Hub request may wait to connect or for an answer; an answer must also bring 1 KiB in
# every such span (see ispan_cli.hub_http). --timeout overrides it per command.
DEFAULT_TIMEOUT = 30.0
_timeout: float | None = None  # set by hub_timeout() for the commands' library calls


@contextmanager
def hub_timeout(seconds: float | None) -> Iterator[None]:
    """Hub calls inside the block that get no ``timeout=`` of their own use ``seconds``
    (None: leave it as it is). How ``--timeout`` reaches code that loads a model deep down."""
    global _timeout
    saved = _timeout
    if seconds is not None:
        _timeout = _check_timeout(seconds)
    try:
        yield
    finally:
        _timeout = saved


def current_timeout() -> float:
    """The timeout Hub calls use now: ``hub_timeout``'s, else ``DEFAULT_TIMEOUT``."""
    return DEFAULT_TIMEOUT if _timeout is None else _timeout


def _check_timeout(seconds: float) -> float:
    if not seconds > 0:
        raise ISpanError(f"--timeout {seconds:g} must be a positive number of seconds, e.g. 30")
    return float(seconds)


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on local disk and where it came from."""

    path: Path  # folder holding config.json and model.safetensors
    identity: ModelIdentity  # id: Hub repo id, zoo name, or the folder path; revision: the commit
    ref: str | None = None  # the Hub revision asked for (branch, tag or commit), None if local

    @property
    def model_id(self) -> str:
        return self.identity.id

    @property
    def source(self) -> Source:
        return self.identity.source  # type: ignore[return-value]

    @property
    def revision(self) -> str | None:
        """The Hub commit hash the files come from; None for local folders."""
        return self.identity.revision

    @property
    def sha256(self) -> str:
        """Of model.safetensors: identifies the weights whatever the source."""
        return self.identity.sha256

    @property
    def display(self) -> str:
        return self.identity.display


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
    timeout: float | None = None,
) -> ResolvedModel:
    """Finds the model named by ``spec``, downloading it from the Hub when needed.

    In order: an existing folder, a folder in the zoo, a Hub repo ``org/name[@revision]``.
    cache_dir, endpoint, token, offline: override huggingface_hub's environment-derived defaults
    (``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``). timeout: seconds for
    each Hub request to connect and to answer (default ``current_timeout()``).
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
    if revision is not None:
        _check_revision(revision, f"{repo_id}@{revision}")
    return _resolve_hub(
        repo_id,
        revision,
        cache_dir=cache_dir,
        endpoint=endpoint,
        token=token,
        offline=offline,
        progress=progress,
        timeout=current_timeout() if timeout is None else _check_timeout(timeout),
    )


def _check_revision(revision: str, where: str) -> None:
    # huggingface_hub stores a revision as the file refs/<revision>: it must stay a name
    parts = revision.split("/")
    if revision.startswith("/") or "\\" in revision or any(p in ("", ".", "..") for p in parts):
        raise ISpanError(
            f"{where}: {revision!r} is not a branch, tag or commit name (no '.' or '..' parts, "
            "no leading '/'); write org/name@<branch, tag or 40-character commit>"
        )


def _local(folder: Path, model_id: str, source: Source) -> ResolvedModel:
    _check_ispan_config(folder / CONFIG_FILE, where=str(folder))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ISpanError(f"{folder} has no {WEIGHTS_FILE}{pickle_hint(pickles_in(folder))}")
    identity = ModelIdentity(model_id, None, sha256_file(weights), source)
    return ResolvedModel(path=folder, identity=identity)


def _resolve_hub(
    repo_id: str,
    revision: str | None,
    *,
    cache_dir: str | Path | None,
    endpoint: str | None,
    token: str | bool | None,
    offline: bool | None,
    progress: ProgressCallback | None,
    timeout: float,
) -> ResolvedModel:
    settings = hub_settings()
    endpoint = (endpoint or settings.endpoint).rstrip("/")
    cache = Path(cache_dir) if cache_dir is not None else settings.cache_dir
    offline = settings.offline if offline is None else offline
    ref = revision or "main"
    name = f"{repo_id}@{revision}" if revision else repo_id
    with guarded_hub(timeout) as guard:
        folder = _download(
            repo_id, ref, name, cache, endpoint, token, offline, progress, guard, revision
        )
        commit = folder.name  # snapshots/<commit hash>: the revision these files really come from
        where = f"Hub repo {repo_id}@{commit[:12]}"
        _check_ispan_config(folder / CONFIG_FILE, where=where)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            listing = [] if offline else _remote_files(repo_id, commit, endpoint, token)
            pickles = sorted(printable(f, 80) for f in listing if Path(f).suffix in PICKLE_SUFFIXES)
            raise ISpanError(f"{where} has no {WEIGHTS_FILE}{pickle_hint(pickles)}")
    identity = ModelIdentity(repo_id, commit, sha256_file(weights), "hub")
    return ResolvedModel(path=folder, identity=identity, ref=ref)


def _download(
    repo_id: str,
    ref: str,
    name: str,
    cache: Path,
    endpoint: str,
    token: str | bool | None,
    offline: bool,
    progress: ProgressCallback | None,
    guard: HubGuard,
    revision: str | None,
) -> Path:
    """snapshot_download, its errors turned into ISpanErrors, and its answer checked."""
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

    try:
        folder = _snapshot(repo_id, ref, name, cache, endpoint, token, offline, progress, guard)
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
    _check_snapshot(folder, repo_id, name, cache)
    return folder


def _snapshot(
    repo_id: str,
    ref: str,
    name: str,
    cache: Path,
    endpoint: str,
    token: str | bool | None,
    offline: bool,
    progress: ProgressCallback | None,
    guard: HubGuard,
) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                repo_type="model",
                revision=ref,
                cache_dir=cache,
                endpoint=endpoint,
                token=token,
                local_files_only=offline,
                allow_patterns=list(HUB_FILES),
                tqdm_class=_progress_bar_class(progress),
                etag_timeout=guard.timeout,
            )
        )
    except Exception as exc:
        # a refusal or a stall seen by the guard is the cause, whatever huggingface_hub made of
        # it (a timeout, "connection closed", an error of a download thread)
        if guard.failure is not None:
            raise _stopped(guard.failure, f"fetching {name}", endpoint, guard.timeout) from exc
        raise


def _stopped(failure: Failure, doing: str, endpoint: str, timeout: float) -> BaseException:
    """The ISpanError for an operation the guard stopped (KeyboardInterrupt for Ctrl-C)."""
    if failure.kind == "interrupted":
        return KeyboardInterrupt()
    if failure.kind == "refused":
        return ISpanError(
            f"the Hub at {endpoint} answered with {failure.detail} while {doing}: refused before "
            "anything was written; a Hugging Face Hub never answers that, so check HF_ENDPOINT "
            "(and the mirror or proxy it goes through)"
        )
    return ISpanError(
        f"the Hub at {endpoint} {failure.detail} while {doing} (--timeout {timeout:g}): check "
        "the network and HF_ENDPOINT, raise --timeout for a slow connection, or set "
        "HF_HUB_OFFLINE=1 to use a cached copy"
    )


def _check_snapshot(folder: Path, repo_id: str, name: str, cache: Path) -> None:
    """The folder huggingface_hub returned is snapshots/<commit> of this repo, and its files
    lie in this repo's part of the cache: a cache written by a hostile server, or damaged, is
    refused rather than read from wherever it points."""
    storage = (cache / ("models--" + repo_id.replace("/", "--"))).expanduser().resolve()
    inside = folder.resolve().parent == storage / "snapshots" and COMMIT.fullmatch(folder.name)
    outside = [
        f
        for f in HUB_FILES
        if (folder / f).exists() and not (folder / f).resolve().is_relative_to(storage)
    ]
    if not inside or outside:
        what = f"{outside[0]} -> {(folder / outside[0]).resolve()}" if outside else str(folder)
        raise ISpanError(
            f"the Hub cache entry of {name} points outside {storage} ({show(what, 200)}): it was "
            f"written by a hostile server or is damaged; delete {storage} and download it again"
        )


def list_cached_models(cache_dir: str | Path | None = None) -> list[CachedHubModel]:
    """Every revision of an ispan model in the Hub cache (``config.json`` with format ispan).

    Other models in the cache (transformers, diffusers...) are left out. Sorted by repo id. A
    revision that cannot be used (no weights, a config ispan did not write, files that point
    outside the cache, a damaged cache entry, e.g. left by a refused hostile server) is listed
    with ``problem`` saying why, instead of failing the listing.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    cache = Path(cache_dir) if cache_dir is not None else hub_settings().cache_dir
    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    entries = []
    scanned = set()
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        scanned.add(Path(repo.repo_path).resolve())
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            entry = _cached_entry(
                repo.repo_id,
                rev.commit_hash,
                tuple(sorted(rev.refs)),
                Path(rev.snapshot_path),
                Path(repo.repo_path),
                rev.size_on_disk,
            )
            if entry is not None:
                entries.append(entry)
    # the repos huggingface_hub's scan skipped as damaged (it reports them as warnings only)
    for storage in sorted(Path(cache).glob("models--*")):
        if storage.is_dir() and storage.resolve() not in scanned:
            entries.extend(_damaged_entries(storage, info.warnings))
    return sorted(entries, key=lambda e: e.repo_id)  # stable: newest revision first per repo


def _cached_entry(
    repo_id: str,
    revision: str,
    refs: tuple[str, ...],
    snapshot: Path,
    storage: Path,
    size: int,
    damage: str | None = None,
) -> CachedHubModel | None:
    """One cached revision, None when it is not an ispan model."""
    problems = [damage] if damage else []
    if not COMMIT.fullmatch(revision):
        problems.append(f"its folder {show(revision)} is not a commit hash")
    outside = [
        f
        for f in HUB_FILES
        if (snapshot / f).exists()
        and not (snapshot / f).resolve().is_relative_to(storage.resolve())
    ]
    doc = None
    if outside:  # not read: it is not ours to read, and the entry is damaged whatever it says
        problems.append(f"{outside[0]} points outside the cache")
    else:
        try:
            doc = json.loads((snapshot / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return None  # not a model of ours (or not readable as one)
        if not isinstance(doc, dict) or doc.get("format") != "ispan":
            return None
    model = doc.get("model") if isinstance(doc, dict) else None
    if doc is not None and not isinstance(model, dict):
        problems.append(f'{CONFIG_FILE} has no "model" section')
    model = model if isinstance(model, dict) else {}
    num_classes = model.get("num_classes", 0)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        problems.append(f"{CONFIG_FILE}: num_classes {show(num_classes)} is not a count")
        num_classes = 0
    if not (snapshot / WEIGHTS_FILE).is_file():
        problems.append(f"no {WEIGHTS_FILE}")
    if damage or outside or not COMMIT.fullmatch(revision):
        problems.append(f"delete {storage} to clean it up")
    return CachedHubModel(
        repo_id=repo_id,
        revision=revision,
        refs=refs,
        path=snapshot,
        arch=printable(model.get("arch", "?"), 40),
        backbone=printable(model.get("backbone", "?"), 40),
        num_classes=num_classes,
        size_on_disk=size,
        problem="; ".join(problems) or None,
    )


def _damaged_entries(storage: Path, warnings: list) -> list[CachedHubModel]:
    """The ispan revisions of a repo folder huggingface_hub could not scan, with its reason."""
    reason = next((str(w) for w in warnings if str(storage) in str(w)), "unreadable layout")
    damage = f"damaged cache entry: {printable(reason.splitlines()[0] if reason else '', 160)}"
    repo_id = storage.name.removeprefix("models--").replace("--", "/")
    snapshots = storage / "snapshots"
    folders = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    found = (_cached_entry(repo_id, p.name, (), p, storage, 0, damage) for p in folders)
    return [e for e in found if e is not None]


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
    names = [b.name for b in refs.branches] + [t.name for t in refs.tags]
    return sorted(printable(n, 60) for n in names)  # server text: no escape sequences


def _no_revision(repo_id: str, ref: str, endpoint: str, refs: list[str] | None) -> str:
    known = f" (branches and tags: {', '.join(refs)})" if refs else ""
    kind = "commit" if COMMIT.fullmatch(ref) else "revision"
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
    text = str(exc).strip()  # may hold server text: printable() drops escape sequences
    return printable(text.splitlines()[0], 300) if text else type(exc).__name__


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
    timeout: float | None = None,
) -> PushedModel:
    """Uploads a model folder (config.json, model.safetensors, README.md) to a Hub repo in one
    commit, creating the repo (and the ``revision`` branch) if missing. Only those three files
    go up, and only as regular files of the folder: never pickles or stray files, and never a
    symbolic link (a README.md linking to a private key would publish the key). The endpoint and
    token come from the environment (``HF_ENDPOINT``, ``HF_TOKEN`` or ``hf auth login``), as for
    downloads; timeout: seconds for each request (default ``current_timeout()``)."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    if parse_hub_spec(repo_id) is None or "@" in repo_id:
        raise ISpanError(f"{repo_id!r} is not a Hub repo id; write org/name (and --revision)")
    if revision is not None:
        _check_revision(revision, "--revision")
    if not folder.is_dir():
        raise ISpanError(f"{folder} is not a folder; give a model folder (config.json, ...)")
    for name in HUB_FILES:  # before anything reads them: load_model would follow a link
        _check_regular_file(folder / name)
    _check_ispan_config(folder / CONFIG_FILE, str(folder))
    if not (folder / CARD_FILE).is_file():
        raise ISpanError(f"{folder} has no {CARD_FILE}: every pushed model needs its model card")
    from ispan_cli.nn import load_model

    load_model(folder)  # refuses weights that do not match config.json, before anything goes up
    settings = hub_settings()
    if settings.offline:
        raise ISpanError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    timeout = current_timeout() if timeout is None else _check_timeout(timeout)
    api = HfApi(endpoint=settings.endpoint)
    branch = revision or "main"
    with ExitStack() as files, guarded_hub(timeout) as guard:
        # exactly the three files, in one commit, read from the files just checked (opened
        # without following links, so a file swapped for a link since is refused too)
        ops = [
            CommitOperationAdd(
                path_in_repo=n, path_or_fileobj=files.enter_context(_open_regular(folder / n))
            )
            for n in HUB_FILES
        ]
        try:
            info = _commit(
                api,
                repo_id,
                branch,
                private,
                ops,
                message or f"Upload {folder.name} with ispan",
                guard,
                settings.endpoint,
            )
        except HfHubHTTPError as exc:
            status = _status(exc)
            hints = {401: "log in (hf auth login) or set HF_TOKEN", 403: "no write access to it"}
            hint = hints.get(status or 0, "see the message")
            raise ISpanError(f"push to {repo_id} failed: {_first_line(exc)} ({hint})") from exc
        except OSError as exc:
            raise ISpanError(f"cannot reach {settings.endpoint} to push ({exc})") from exc
        except Exception as exc:
            if not type(exc).__module__.startswith(("httpx", "httpcore")):
                raise
            raise ISpanError(
                f"cannot reach {settings.endpoint} to push ({type(exc).__name__}: "
                f"{_first_line(exc)}): check the network, proxy variables and HF_ENDPOINT"
            ) from exc
    return PushedModel(repo_id, branch, info.oid, info.commit_url, len(HUB_FILES))


def _commit(
    api,
    repo_id: str,
    branch: str,
    private: bool,
    ops: list,
    message: str,
    guard: HubGuard,
    endpoint: str,
):
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        return api.create_commit(repo_id, ops, commit_message=message, revision=branch)
    except Exception as exc:
        if guard.failure is not None:  # as for downloads: the guard saw the cause
            raise _stopped(guard.failure, f"pushing to {repo_id}", endpoint, guard.timeout) from exc
        raise


def _check_regular_file(path: Path) -> None:
    """Refuses a symbolic link or anything but a regular file; a missing file is left to the
    checks that need it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ISpanError(
            f"{path} is a symbolic link (to {show(os.readlink(path), 200)}): hub push uploads "
            f"only regular files inside the folder, as a link may point at anything (a private "
            f"key, say); replace it with a copy of the file it should be"
        )
    if not stat.S_ISREG(mode):
        raise ISpanError(f"{path} is not a regular file: hub push uploads regular files only")


@contextmanager
def _open_regular(path: Path) -> Iterator[BinaryIO]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:  # ELOOP: it became a link since it was checked
        _check_regular_file(path)
        raise ISpanError(f"cannot read {path} to push it ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ISpanError(f"{path} is not a regular file: hub push uploads regular files only")
        yield file
