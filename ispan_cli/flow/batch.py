"""``ispan flow extract``: many videos, in parallel processes, resumable.

Videos come from files, folders, list files or a dataset layout; each gets an output name (its
folder under ``--out``) that keeps the dataset's class folder, as MMAction2's rawframes do
(``<Class>/<video>``). Workers are separate processes, one video each at a time: OpenCV's
TV-L1 gains only about 1.5x from a second thread on 2 cores, so processes are what use the
cores. A worker's OpenCV gets the cores the other busy workers leave (one thread each while all
are busy; more at the tail, when the last videos run and the other workers have none left), set
before every frame pair.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ispan_cli.data.flow_format import LAYOUTS, METHODS, FlowSpec
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.flow.extract import FlowJob, FlowResult, extract_video
from ispan_cli.terminal import visible


@dataclass(frozen=True)
class FlowOptions:
    """What to extract: ``paths`` (videos, folders, list files) or a ``dataset``."""

    out: str
    paths: tuple[str, ...] = ()
    dataset: str | None = None
    data_root: str | None = None
    split: int = 1
    method: str = "tvl1"
    layout: str = "rawframes"
    bound: float = 20.0
    short_side: int | None = None
    rgb: bool = False
    workers: int = 1
    decoder: str = "auto"
    overwrite: bool = False
    device: str = "auto"


@dataclass(frozen=True)
class FlowProgress:
    videos_done: int
    videos: int
    frames: int  # frames processed in this run (skipped videos not counted)
    seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[FlowProgress], None]


@dataclass(frozen=True)
class FlowReport:
    out: str
    spec: FlowSpec
    workers: int
    results: tuple[FlowResult, ...]
    seconds: float
    frames: int = field(default=0)

    @property
    def failed(self) -> tuple[FlowResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "spec": self.spec.to_dict(),
            "workers": self.workers,
            "videos": len(self.results),
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "frames_per_s": round(self.frames / self.seconds, 2) if self.seconds > 0 else None,
            "results": [r.to_dict() for r in self.results],
        }


def run_flow_extract(options: FlowOptions, progress: Progress | None = None) -> FlowReport:
    """Extracts every video's flow (see the module docstring); bad videos are reported in the
    results and the others go on."""
    from ispan_cli.outputs import exclusive

    o = _checked(options)
    jobs, failures = collect_jobs(o)
    if not jobs and not failures:
        raise ISpanError("no videos to extract flow from; give video files, folders or lists")
    out = Path(o.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {visible(out)} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    # the method is created here too: a method this machine cannot run (RAFT without a GPU or
    # its weights, TV-L1 without OpenCV contrib) is one error before any work
    from ispan_cli.flow.methods import create_method

    method = create_method(o.method, o.device)
    spec = FlowSpec(o.method, o.bound, o.layout, o.short_side, o.rgb, tuple(sorted(method.params)))
    start = time.perf_counter()
    results: dict[int, FlowResult] = {}
    frames = 0
    total = len(jobs) + len(failures)

    def tick(extra: int = 0) -> None:
        nonlocal frames
        frames += extra
        if progress:
            elapsed = time.perf_counter() - start
            progress(FlowProgress(len(results) + len(failures), total, frames, elapsed))

    with exclusive(out):
        tick()
        workers = min(o.workers, len(jobs)) or 1
        if workers == 1 or o.method == "raft":  # one GPU: one process
            workers = 1
            for i, job in enumerate(jobs):
                results[i] = extract_video(job, out, spec, method, o.decoder, o.overwrite, tick)
                tick()
        else:
            for i, result in _in_processes(jobs, out, spec, o, workers, tick):
                results[i] = result
                tick()
    ordered = tuple(failures) + tuple(results[i] for i in range(len(jobs)))
    return FlowReport(str(out), spec, workers, ordered, time.perf_counter() - start, frames)


def _checked(o: FlowOptions) -> FlowOptions:
    if o.paths and o.dataset:
        raise UsageError("give videos, folders or list files, or --dataset, not both")
    if not o.paths and not o.dataset:
        raise UsageError("give videos, folders or list files, or --dataset NAME --data-root DIR")
    if o.method not in METHODS:
        raise UsageError(f"unknown --method {o.method!r}; choose one of: {', '.join(METHODS)}")
    if o.layout not in LAYOUTS:
        raise UsageError(f"unknown --layout {o.layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if not 0 < o.bound < 1e6:
        raise UsageError(f"--bound must be a positive number of pixels, got {o.bound}")
    if o.rgb and o.layout != "rawframes":
        raise UsageError("--rgb writes img_00001.jpg beside the flow: it needs --layout rawframes")
    if o.workers < 1:
        raise UsageError("--workers must be at least 1")
    return replace(o, bound=float(o.bound))


# -- which videos, under which names ---------------------------------------------------------------
def collect_jobs(o: FlowOptions) -> tuple[list[FlowJob], list[FlowResult]]:
    """The videos to extract, each with its output name, and a failure for each listed video
    that is missing or would share another's output folder."""
    pairs: list[tuple[str, str]] = []
    failures: list[FlowResult] = []
    if o.dataset:
        from ispan_cli.data.catalog import load_dataset

        if o.dataset == "synthetic":
            raise UsageError(
                "the synthetic dataset is generated on the fly and has no files: write it with "
                "`ispan data synth --out DIR`, then give --dataset folder --data-root DIR"
            )
        data = load_dataset(o.dataset, o.data_root, o.split)
        items = dict.fromkeys(i.path for i in (*data.train, *data.test))
        pairs = [(p, _dataset_name(p, o.dataset, o.data_root)) for p in items]
        failures = [
            FlowResult(p, Path(p).stem, "failed", message=f"{p}: listed but not on disk")
            for p in data.missing
        ]
    else:
        for arg in o.paths:
            pairs.extend(_named(arg))
    jobs: list[FlowJob] = []
    owner: dict[str, str] = {}  # output name -> the video written there
    for source, name in pairs:
        if source in owner.values():
            continue  # given twice (as a file and inside a folder): extracted once
        if name in owner:
            failures.append(
                FlowResult(
                    source,
                    name,
                    "failed",
                    message=f"{source} would be written to the same folder {name!r} as "
                    f"{owner[name]}; rename one of them or extract them separately",
                )
            )
            continue
        owner[name] = source
        jobs.append(FlowJob(source, name))
    return jobs, failures


def _named(arg: str) -> Iterator[tuple[str, str]]:
    from ispan_cli.data.check import collect_paths
    from ispan_cli.video.files import videos_in
    from ispan_cli.video.list_files import is_list_file

    path = Path(arg)
    if path.is_dir():
        for video in videos_in(path):
            yield str(video), _stem_path(video.relative_to(path))
    elif is_list_file(path) and path.is_file():
        for video in collect_paths([arg]):
            rel = Path(video).relative_to(path.parent) if _under(video, path.parent) else None
            yield video, _stem_path(rel) if rel is not None else Path(video).stem
    else:
        yield str(path), path.stem


def _dataset_name(path: str, dataset: str, root: str | None) -> str:
    p = Path(path)
    if dataset in ("folder", "list") and root and _under(path, root):
        return _stem_path(p.relative_to(root))
    return f"{p.parent.name}/{p.stem}"  # <Class>/<video>, MMAction2's level-2 rawframes


def _stem_path(rel: Path) -> str:
    return rel.with_suffix("").as_posix()


def _under(path: str | Path, root: str | Path) -> bool:
    try:
        Path(path).relative_to(root)
    except ValueError:
        return False
    return True


# -- processes -------------------------------------------------------------------------------------
def _in_processes(
    jobs: Sequence[FlowJob],
    out: Path,
    spec: FlowSpec,
    o: FlowOptions,
    workers: int,
    tick: Callable[[int], None],
) -> Iterator[tuple[int, FlowResult]]:
    """Yields (job number, result) as videos finish; frame counts arrive through a queue."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: the parent holds rich's refresh thread and OpenCV's thread pool, which a forked
    # child can inherit in a locked state
    ctx = multiprocessing.get_context("spawn")
    frames = ctx.Queue()
    busy = ctx.Value("i", 0)  # workers extracting a video now
    pool = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(o.method, o.device, frames, busy),
    )
    try:
        pending = {
            pool.submit(_work, job, str(out), spec, o.decoder, o.overwrite): i
            for i, job in enumerate(jobs)
        }
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(frames, tick)
            for future in done:
                i = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # a worker died (killed, out of memory)
                    job = jobs[i]
                    result = FlowResult(
                        job.source,
                        job.name,
                        "failed",
                        message=f"{job.source}: the worker process failed ({type(exc).__name__}:"
                        f" {exc}); run it again, it resumes",
                    )
                yield i, result
        _drain(frames, tick)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        frames.close()


def _drain(frames: Any, tick: Callable[[int], None]) -> None:
    while True:
        try:
            tick(frames.get_nowait())
        except queue.Empty:
            return


_worker: dict[str, Any] = {}


def _init_worker(method: str, device: str, frames: Any, busy: Any) -> None:
    import cv2

    from ispan_cli.flow.methods import create_method

    cv2.setNumThreads(1)  # until a video starts: see sharing_cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    made = create_method(method, device)
    _worker["method"] = replace(made, flows=sharing_cores(made.flows, busy))
    _worker["frames"] = frames
    _worker["busy"] = busy


def sharing_cores(flows: Callable[[Any], Any], busy: Any) -> Callable[[Any], Any]:
    """``flows`` pair by pair, OpenCV's threads set before each pair to this worker's share of
    the cores: ``cores // busy`` (``busy``: a shared count of the workers extracting a video).
    Pairs are independent, so the flows are those of one call."""
    import cv2
    import numpy as np

    from ispan_cli.runtime.threads import usable_cores

    cores = usable_cores()[0]
    threads = cv2.getNumThreads()

    def run(frames):
        nonlocal threads
        out = []
        for i in range(len(frames) - 1):
            share = max(1, cores // max(busy.value, 1))
            if share != threads:
                cv2.setNumThreads(share)
                threads = share
            out.append(flows(frames[i : i + 2]))  # (1, H, W, 2)
        return np.concatenate(out) if out else flows(frames)

    return run


def _work(job: FlowJob, out: str, spec: FlowSpec, decoder: str, overwrite: bool) -> FlowResult:
    frames, busy = _worker["frames"], _worker["busy"]
    with busy.get_lock():
        busy.value += 1
    try:
        return extract_video(
            job, Path(out), spec, _worker["method"], decoder, overwrite, frames.put
        )
    finally:
        with busy.get_lock():
            busy.value -= 1
