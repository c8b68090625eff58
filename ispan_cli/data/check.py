"""Checking dataset videos before they are used: each file is opened and exactly the frames
training and evaluation read (TSN centre sampling at the model's K) are decoded, so a run says up
front how many listed videos it cannot use and why, instead of losing them quietly mid-epoch.

Training draws random offsets inside each segment; the check reads the centre frames and requires
at least K frames, which is what makes any offset readable. A file PyAV cannot read is tried with
OpenCV, so a damaged file is told apart from one that only needs ``--decoder opencv``.

Results are cached per file (absolute path, size, mtime, K, decoder) in a JSON-lines file, so a
resumed run does not decode its dataset again. Importing this module imports neither torch nor
a video backend; the parallel scan (a torch DataLoader) imports torch when it runs.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.model_folder import atomic_write_text
from ispan_cli.video.files import suffix_list, videos_in
from ispan_cli.video.list_files import is_list_file, list_entries, open_list

# reason -> how a summary names it; the order is the order summaries list them in
REASONS = {
    "missing": "missing",
    "unreadable": "unreadable",
    "not_a_video": "not a video",
    "truncated": "truncated or empty",
    "too_short": "too short",
    "decode_error": "decode error",
    "needs_opencv": "decodes only with --decoder opencv",
}
# PyAV failures worth a second try with OpenCV (missing, unreadable, too short: no decoder helps)
_RETRY = frozenset({"not_a_video", "truncated", "decode_error"})
CACHE_FILE = "video_checks.jsonl"

# Called with (files checked, files to check).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FileCheck:
    """One file: ``reason`` None when it is usable, else a key of :data:`REASONS`.

    frames: the frames the video has (None when it could not be opened); warnings: what the
    decoder said about a usable file (e.g. truncated, but the sampled frames decode).
    """

    path: str
    reason: str | None = None
    message: str = ""
    frames: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        """One line naming the file once (decoder messages usually start with the path)."""
        if self.message.startswith(self.path):
            return self.message
        return f"{self.path}: {self.message or REASONS.get(self.reason or '', 'ok')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "frames": self.frames,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileCheck:
        return cls(
            str(d["path"]),
            d.get("reason"),
            str(d.get("message", "")),
            d.get("frames"),
            tuple(d.get("warnings", ())),
        )


def check_video(
    path: str | Path, segments: int, decoder: str = "auto", short_side: int | None = None
) -> FileCheck:
    """Opens ``path`` and decodes its K TSN centre frames (scaled to ``short_side``, as the
    data loader asks for them); never raises for a bad file. When PyAV fails, OpenCV is tried:
    success there is reported as ``needs_opencv``."""
    first = _attempt(str(path), segments, decoder, short_side)
    if first.ok or first.reason not in _RETRY or decoder == "opencv" or not _has_pyav_and_cv2():
        return first
    second = _attempt(str(path), segments, "opencv", short_side)
    if not second.ok:
        return first
    return FileCheck(
        str(path),
        "needs_opencv",
        f"PyAV cannot read it ({first.message}); it decodes with --decoder opencv",
        second.frames,
        second.warnings,
    )


def _attempt(path: str, segments: int, decoder: str, short_side: int | None) -> FileCheck:
    from ispan_cli.video import TSNSampler, open_video
    from ispan_cli.video.errors import DecoderUnavailableError, VideoError

    try:
        with open_video(path, decoder) as reader:
            info = reader.info()
            times = reader.frame_times()
            if len(times) < segments:
                return FileCheck(
                    path,
                    "too_short",
                    f"{path} has {len(times)} frame(s); K={segments} segments need at least "
                    f"{segments}: use a smaller --segments or remove the file",
                    len(times),
                )
            sampling = TSNSampler(segments, mode="centre").sample(times, info.duration)
            reader.read(sampling.unique_indices(), short_side)
    except DecoderUnavailableError:
        raise  # the machine's setup, not the file: every file would fail the same way
    except VideoError as exc:
        return FileCheck(path, _reason(exc), str(exc))
    except Exception as exc:  # a checker must survive any file: report it as a decode failure
        return FileCheck(path, "decode_error", f"{path}: {type(exc).__name__}: {exc}")
    return FileCheck(path, None, "", info.num_frames, tuple(info.warnings))


def _reason(exc: Exception) -> str:
    from ispan_cli.video import errors as e

    table = (
        (e.VideoNotFoundError, "missing"),
        ((e.NotAFileError, e.UnreadableVideoError), "unreadable"),
        ((e.NotAVideoError, e.NoVideoStreamError), "not_a_video"),
        ((e.TruncatedVideoError, e.EmptyVideoError), "truncated"),
        (e.VideoTooShortError, "too_short"),
    )
    return next((reason for kinds, reason in table if isinstance(exc, kinds)), "decode_error")


def _check_decoder(decoder: str) -> None:
    from ispan_cli.video import DECODERS, available_decoders
    from ispan_cli.video.errors import DecoderUnavailableError

    if decoder not in DECODERS:
        raise UsageError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
    why = available_decoders()
    if decoder != "auto" and why[decoder] is not None:
        raise DecoderUnavailableError(f"--decoder {decoder}: {why[decoder]}")
    if decoder == "auto" and all(w is not None for w in why.values()):
        raise DecoderUnavailableError(
            "no video decoder can be imported (PyAV or OpenCV): pip install av "
            "opencv-contrib-python-headless"
        )


def _has_pyav_and_cv2() -> bool:
    from ispan_cli.video import available_decoders

    return all(why is None for why in available_decoders().values())


# -- the cache ------------------------------------------------------------------------------------
class CheckCache:
    """Results by absolute path, valid while (size, mtime_ns, K, decoder) are unchanged.

    A damaged or foreign cache file is ignored (a cache never stops a run); :meth:`save` writes
    it atomically (temporary file in the same folder, then ``os.replace``).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, dict[str, Any]] = {}
        self._changed = False
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[str(entry["key"]["path"])] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(path: str, segments: int, decoder: str) -> dict[str, Any] | None:
        """None for a file that cannot be stat'ed (its check is instant anyway)."""
        full = os.path.abspath(path)
        try:
            st = os.stat(full)
        except OSError:
            return None
        return {
            "path": full,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "segments": segments,
            "decoder": decoder,
        }

    def get(self, key: dict[str, Any] | None, path: str) -> FileCheck | None:
        entry = self._entries.get(key["path"]) if key is not None else None
        if entry is None or entry.get("key") != key:
            return None
        try:
            result = FileCheck.from_dict({**entry["result"], "path": path})
        except (KeyError, TypeError):
            return None
        return result if result.reason is None or result.reason in REASONS else None

    def put(self, key: dict[str, Any] | None, result: FileCheck) -> None:
        if key is not None:
            self._entries[key["path"]] = {"key": key, "result": result.to_dict()}
            self._changed = True

    def save(self) -> None:
        if self.path is None or not self._changed:
            return
        atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in self._entries.values()))


# -- many files -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckReport:
    """The results of :func:`check_videos`, in the order of the paths given."""

    segments: int
    decoder: str
    workers: int
    results: tuple[FileCheck, ...]
    cached: int = 0  # results that came from the cache
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[FileCheck, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def warned(self) -> tuple[FileCheck, ...]:
        return tuple(r for r in self.results if r.ok and r.warnings)

    def by_reason(self) -> dict[str, int]:
        return count_reasons(r.reason for r in self.failed)

    def to_dict(self) -> dict[str, Any]:
        checked = len(self.results) - self.cached
        return {
            "segments": self.segments,
            "decoder": self.decoder,
            "workers": self.workers,
            "files": len(self.results),
            "ok": len(self.results) - len(self.failed),
            "failed": len(self.failed),
            "by_reason": self.by_reason(),
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "videos_per_s": round(checked / self.seconds, 2) if self.seconds > 0 else None,
            "notes": list(self.notes),
            "failures": [r.to_dict() for r in self.failed],
            "warnings": [r.to_dict() for r in self.warned],
        }


def check_videos(
    paths: Sequence[str],
    segments: int,
    decoder: str = "auto",
    short_side: int | None = None,
    workers: int = 0,
    cache: str | Path | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Checks every file (:func:`check_video`) in ``workers`` data-loader processes (0: in this
    process), skipping files whose cached result is still valid; saves the cache at the end,
    also when interrupted."""
    if segments < 1:
        raise UsageError("--segments must be at least 1")
    if workers < 0:
        raise UsageError("--workers must be non-negative")
    _check_decoder(decoder)  # here, not once per file inside the workers
    start = time.perf_counter()
    store = CheckCache(cache)
    results: list[FileCheck | None] = [None] * len(paths)
    keys = [CheckCache.key(p, segments, decoder) for p in paths]
    todo = []
    for i, (path, key) in enumerate(zip(paths, keys, strict=True)):
        results[i] = store.get(key, path)
        if results[i] is None:
            todo.append(i)
    cached = len(paths) - len(todo)
    done = cached
    if progress:
        progress(done, len(paths))
    try:
        for j, result in _scan([paths[i] for i in todo], segments, decoder, short_side, workers):
            i = todo[j]
            results[i] = result
            store.put(keys[i], result)
            done += 1
            if progress:
                progress(done, len(paths))
    finally:
        store.save()
    final = tuple(r for r in results if r is not None)
    return CheckReport(segments, decoder, workers, final, cached, time.perf_counter() - start)


class _Files:
    """A map-style dataset of checks: the data loader's workers run them in parallel."""

    def __init__(self, paths: list[str], segments: int, decoder: str, short_side: int | None):
        self.paths, self.segments, self.decoder, self.short_side = (
            paths,
            segments,
            decoder,
            short_side,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, FileCheck]:
        return i, check_video(self.paths[i], self.segments, self.decoder, self.short_side)


def _as_is(sample: Any) -> Any:
    return sample


def _scan(
    paths: list[str], segments: int, decoder: str, short_side: int | None, workers: int
) -> Iterable[tuple[int, FileCheck]]:
    files = _Files(paths, segments, decoder, short_side)
    if not paths:
        return
    if workers == 0:
        yield from (files[i] for i in range(len(files)))
        return
    from ispan_cli.data.loader import data_loader

    loader = data_loader(
        files,
        batch_size=None,
        shuffle=False,
        num_workers=min(workers, len(paths)),
        collate_fn=_as_is,
        in_order=False,  # a long file must not hold back the results behind it
        prefetch_factor=4,
    )
    yield from loader


def count_reasons(reasons: Iterable[str | None]) -> dict[str, int]:
    """Counts per reason, in the order of :data:`REASONS` (unknown reasons last)."""
    counts = Counter(r or "decode_error" for r in reasons)
    order = [*REASONS, *sorted(set(counts) - set(REASONS))]
    return {r: counts[r] for r in order if counts[r]}


# -- `ispan data check` ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DataCheckOptions:
    """What `ispan data check` scans: ``paths`` (files, folders, list files) or a dataset."""

    paths: tuple[str, ...] = ()
    dataset: str | None = None
    data_root: str | None = None
    split: int = 1
    model: str | None = None
    segments: int | None = None
    decoder: str = "auto"
    workers: int = 0
    cache: str | None = None


def run_data_check(options: DataCheckOptions, progress: Progress | None = None) -> CheckReport:
    """Collects the files, takes K and the frame size from the model (``--model`` or the
    default model), and checks every file."""
    o = options
    if o.paths and o.dataset:
        raise UsageError("give videos, folders or list files, or --dataset, not both")
    if not o.paths and not o.dataset:
        raise UsageError("give videos, folders or list files to check, or --dataset NAME")
    segments, short_side = _model_sampling(o.model)
    segments = o.segments or segments
    notes: list[str] = []
    missing: list[str] = []
    if o.dataset:
        from ispan_cli.data.catalog import load_dataset

        data = load_dataset(o.dataset, o.data_root, o.split)
        paths = list(
            dict.fromkeys(
                i.path for i in (*data.train, *data.test) if not i.path.startswith("synthetic:")
            )
        )
        missing = list(data.missing)
        if o.dataset == "synthetic":
            notes.append("the synthetic dataset is generated on the fly: no files to check")
    else:
        paths = collect_paths(o.paths)
        if not paths:
            raise ISpanError(
                f"no videos ({suffix_list()}) in {', '.join(o.paths)}; give video "
                "files, folders holding them, or list files"
            )
    report = check_videos(paths, segments, o.decoder, short_side, o.workers, o.cache, progress)
    gone = tuple(FileCheck(p, "missing", "listed but not on disk") for p in missing)
    return CheckReport(
        report.segments,
        report.decoder,
        report.workers,
        gone + report.results,
        report.cached,
        report.seconds,
        tuple(notes),
    )


def _model_sampling(model: str | None) -> tuple[int, int]:
    """(K, short side of the decoded frames) of a model folder, zoo name or Hub repo."""
    from ispan_cli.nn import read_config
    from ispan_cli.runtime.loading import resolve
    from ispan_cli.video.preprocess import spec_from_config

    resolved = resolve(model)  # the config only: checking videos needs no weights
    config, doc = read_config(resolved.path)
    return int(config.num_segments), spec_from_config(config, doc).resize


def collect_paths(args: Sequence[str]) -> list[str]:
    """Video files as given (any suffix), the videos under folders (recursively, sorted), and
    the entries of list files (.txt, .lst, .csv; read by :mod:`ispan_cli.video.list_files`, a
    folder entry searched like a folder argument). Paths that do not exist are kept: the check
    reports them as missing."""
    return list(dict.fromkeys(p for arg in args for p in _paths(Path(arg))))


def _paths(path: Path, *, in_list: bool = False) -> Iterator[str]:
    if path.is_dir():
        yield from (str(p) for p in videos_in(path))
    elif not in_list and is_list_file(path) and path.is_file():
        with open_list(path) as fh:  # classify's reading: BOMs, UTF-16, non-UTF-8 names
            for entry in list_entries(fh, csv_fields=path.suffix.lower() == ".csv"):
                yield from _paths(Path(entry), in_list=True)  # a list names no further lists
    else:
        yield str(path)
