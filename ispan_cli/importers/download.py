"""Downloading a checkpoint into ispan's cache: resumable, verified, and atomic.

A download goes to ``<cache>/downloads/<first 16 hex of sha256(url)>/<file name>``; while it runs
the bytes collect in ``<name>.part``, and a later run asks the server for the rest with an HTTP
``Range`` request (a server that ignores it sends the whole file again, which is also handled).
MMAction2 names its files ``..._<date>-<first 8 hex digits of the file's sha256>.pth``: when the
name carries such a prefix the finished file must match it, else it is deleted. The cache is
``$ISPAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/ispan``, else ``~/.cache/ispan``. Torch-free.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import sha256_file

CACHE_ENV = "ISPAN_CACHE_DIR"
# (bytes so far, total bytes or None)
ProgressCallback = Callable[[int, int | None], None]
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.(?:pth|pt|ckpt|safetensors)$")
_CHUNK = 1 << 16


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ispan"


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix an MMAction2-style file name promises, None when it has none."""
    match = _HASH_IN_NAME.search(name)
    return match[1] if match else None


def download(
    url: str,
    *,
    timeout: float = 30.0,
    progress: ProgressCallback | None = None,
    cache: Path | None = None,
) -> Path:
    """The cached file for ``url``, downloaded (or completed) first when needed."""
    parsed = urllib.parse.urlparse(url)
    name = Path(urllib.parse.unquote(parsed.path)).name
    if parsed.scheme not in ("http", "https") or not name or name in (".", ".."):
        raise ISpanError(f"{url} is not an http(s) URL of a file")
    folder = (cache or cache_dir()) / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16]
    target = folder / name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (name + ".part")
    _fetch(url, part, timeout, progress)
    expected = hash_prefix(name)
    if expected is not None:
        actual = sha256_file(part)
        if not actual.startswith(expected):
            part.unlink(missing_ok=True)
            raise ISpanError(
                f"{url} downloaded, but its sha256 starts with {actual[:8]}, not {expected} as "
                "its name promises: the file is damaged or not the published one (deleted; run "
                "again to download it afresh, or check the URL)"
            )
    os.replace(part, target)
    return target


def _fetch(url: str, part: Path, timeout: float, progress: ProgressCallback | None) -> None:
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ispan"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        # A fresh opener reads the proxy variables now: urlopen's shared one keeps the
        # environment of the first call in the process (torch.hub's, say).
        response = urllib.request.build_opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already whole
            return
        raise ISpanError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ISpanError(f"cannot download {url} ({reason}); check the URL and network") from exc
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start the part file again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        try:
            with open(part, "ab" if resumed else "wb") as fh:
                while block := response.read(_CHUNK):
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, short
            raise _stopped(url, done, total, exc) from exc
    if total is not None and done < total:
        raise _stopped(url, done, total, None)


def _stopped(url: str, done: int, total: int | None, exc: BaseException | None) -> ISpanError:
    of = f" of {total}" if total is not None else ""
    why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return ISpanError(
        f"the download of {url} stopped after {done}{of} bytes{why}; run the same command again "
        "to resume it where it stopped"
    )
