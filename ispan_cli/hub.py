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

Listing the cache is ``ispan_cli.hub_cache``; uploading is ``ispan_cli.hub_push``. Importing this
module imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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

# The files a model folder holds on the Hub: never pickles, never anything else.
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
        _timeout = check_timeout(seconds)
    try:
        yield
    finally:
        _timeout = saved


def current_timeout() -> float:
    """The timeout Hub calls use now: ``hub_timeout``'s, else ``DEFAULT_TIMEOUT``."""
    return DEFAULT_TIMEOUT if _timeout is None else _timeout


def check_timeout(seconds: float) -> float:
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
    if Path(spec).expanduser().is_file():  # e.g. a checkpoint: not a model, not a Hub repo
        raise ISpanError(
            f"{spec} is a file, not a model folder; --model takes a folder holding config.json "
            "and model.safetensors (a train run's is its best/ folder), or with --runtime onnx "
            "a .onnx file"
        )
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
        check_revision(revision, f"{repo_id}@{revision}")
    try:
        return _resolve_hub(
            repo_id,
            revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            token=token,
            offline=offline,
            progress=progress,
            timeout=current_timeout() if timeout is None else check_timeout(timeout),
        )
    except ISpanError as exc:
        # `runs/best` with a local runs/ folder but no runs/best in it: a mistyped path far
        # more likely than a Hub repo of an org named like a folder here; say both
        org = Path(repo_id.split("/")[0])
        if revision is None and org.is_dir():
            raise ISpanError(
                f"{exc} (and there is no folder {spec} here: {org}/ holds {_some_children(org)})"
            ) from exc
        raise


def _some_children(folder: Path, shown: int = 5) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        return "no folders"
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def fetch_repo_files(
    spec: str,
    *,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> tuple[Path, str, str]:
    """The snapshot folder of a Hub repo that is not an ispan model (e.g. ``timm/resnet50.a1_in1k``
    for ``ispan models import``): (folder, repo id, commit). Fetches the same files as a model
    (config.json, model.safetensors, README.md; never a pickle) through the same guard, without
    asking for an ispan config.json."""
    parsed = parse_hub_spec(spec)
    if parsed is None:
        raise ISpanError(f"{spec!r} is not a Hub repo (org/name or org/name@revision)")
    repo_id, revision = parsed
    if revision is not None:
        check_revision(revision, spec)
    settings = hub_settings()
    seconds = current_timeout() if timeout is None else check_timeout(timeout)
    ref = revision or "main"
    with guarded_hub(seconds) as guard:
        folder = _download(
            repo_id, ref, spec, settings.cache_dir, settings.endpoint, None, settings.offline,
            progress, guard, revision,
        )  # fmt: skip
    return folder, repo_id, folder.name


def check_revision(revision: str, where: str) -> None:
    # huggingface_hub stores a revision as the file refs/<revision>: it must stay a name
    parts = revision.split("/")
    if revision.startswith("/") or "\\" in revision or any(p in ("", ".", "..") for p in parts):
        raise ISpanError(
            f"{where}: {revision!r} is not a branch, tag or commit name (no '.' or '..' parts, "
            "no leading '/'); write org/name@<branch, tag or 40-character commit>"
        )


def _local(folder: Path, model_id: str, source: Source) -> ResolvedModel:
    check_ispan_config(folder / CONFIG_FILE, where=str(folder))
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
        check_ispan_config(folder / CONFIG_FILE, where=where)
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
        if isinstance(cause, HfHubHTTPError) and http_status(cause) == 404:
            # a commit hash skips the revision look-up; its file listing is what 404s
            refs = _refs(repo_id, endpoint, token)
            raise ISpanError(_no_revision(repo_id, ref, endpoint, refs)) from exc
        reason = f"{type(cause).__name__}: {first_line(cause)}" if cause else first_line(exc)
        raise ISpanError(
            f"cannot reach the Hub at {endpoint} ({reason}) and {name} is not in the cache "
            f"({cache}): check the network, or set HF_ENDPOINT to a Hub or mirror you can reach"
        ) from exc
    except HfHubHTTPError as exc:
        raise ISpanError(
            f"the Hub at {endpoint} refused {name} (HTTP {http_status(exc)}: {first_line(exc)}); "
            "check HF_TOKEN and HF_ENDPOINT"
        ) from exc
    except HFValidationError as exc:
        raise ISpanError(f"{name} is not a valid Hub repo: {first_line(exc)}") from exc
    except OSError as exc:  # e.g. a cache folder that cannot be written
        raise ISpanError(f"cannot store {name} in the Hub cache {cache}: {exc}") from exc
    except Exception as exc:
        # huggingface_hub lets some transport errors (e.g. a broken proxy) through unwrapped;
        # they come from its HTTP library, whatever that is in this version.
        if not type(exc).__module__.startswith(("httpx", "httpcore")):
            raise
        raise ISpanError(
            f"cannot reach the Hub at {endpoint} ({type(exc).__name__}: {first_line(exc)}): "
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
            raise stopped_error(guard.failure, f"fetching {name}", endpoint, guard.timeout) from exc
        raise


def stopped_error(failure: Failure, doing: str, endpoint: str, timeout: float) -> BaseException:
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


def check_ispan_config(path: Path, where: str) -> None:
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


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()  # may hold server text: printable() drops escape sequences
    return printable(text.splitlines()[0], 300) if text else type(exc).__name__
