"""``ispan hub push``: a model folder up to a Hub repo, regular files inside the folder only.

Importing this module imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ispan_cli.errors import ISpanError
from ispan_cli.hub import (
    HUB_FILES,
    check_ispan_config,
    check_revision,
    check_timeout,
    current_timeout,
    first_line,
    http_status,
    hub_settings,
    parse_hub_spec,
    stopped_error,
)
from ispan_cli.hub_http import HubGuard, guarded_hub, show
from ispan_cli.model_folder import CARD_FILE, CONFIG_FILE


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
        check_revision(revision, "--revision")
    if not folder.is_dir():
        raise ISpanError(f"{folder} is not a folder; give a model folder (config.json, ...)")
    for name in HUB_FILES:  # before anything reads them: load_model would follow a link
        _check_regular_file(folder / name)
    check_ispan_config(folder / CONFIG_FILE, str(folder))
    if not (folder / CARD_FILE).is_file():
        raise ISpanError(f"{folder} has no {CARD_FILE}: every pushed model needs its model card")
    from ispan_cli.nn import load_model

    load_model(folder)  # refuses weights that do not match config.json, before anything goes up
    settings = hub_settings()
    if settings.offline:
        raise ISpanError("HF_HUB_OFFLINE is set: unset it to push to the Hub")
    timeout = current_timeout() if timeout is None else check_timeout(timeout)
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
            status = http_status(exc)
            hints = {401: "log in (hf auth login) or set HF_TOKEN", 403: "no write access to it"}
            hint = hints.get(status or 0, "see the message")
            raise ISpanError(f"push to {repo_id} failed: {first_line(exc)} ({hint})") from exc
        except OSError as exc:
            raise ISpanError(f"cannot reach {settings.endpoint} to push ({exc})") from exc
        except Exception as exc:
            if not type(exc).__module__.startswith(("httpx", "httpcore")):
                raise
            raise ISpanError(
                f"cannot reach {settings.endpoint} to push ({type(exc).__name__}: "
                f"{first_line(exc)}): check the network, proxy variables and HF_ENDPOINT"
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
            raise stopped_error(
                guard.failure, f"pushing to {repo_id}", endpoint, guard.timeout
            ) from exc
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
