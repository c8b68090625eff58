"""The ispan models in the Hub cache (``ispan models list``, ``ispan doctor``): every revision,
and the damaged ones listed with why instead of failing the listing.

Importing this module imports neither torch nor huggingface_hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ispan_cli.hub import HUB_FILES, hub_settings
from ispan_cli.hub_http import COMMIT, printable, show
from ispan_cli.model_folder import CONFIG_FILE, WEIGHTS_FILE


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
