"""One video to flow JPEGs: decode with ispan's video layer, compute, quantise, write; the
``flow.json`` record last, so a video with a record is finished and one without is redone."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispan_cli.data.flow_format import (
    JPEG_QUALITY,
    META_FILE,
    FlowMeta,
    FlowSpec,
    flow_names,
    quantise,
    read_meta,
    rgb_name,
    video_dirs,
)
from ispan_cli.errors import ISpanError
from ispan_cli.flow.methods import FlowMethod
from ispan_cli.model_folder import atomic_write_text
from ispan_cli.terminal import visible

# Called with the number of frames just processed (for a frames/s figure).
FrameProgress = Callable[[int], None]


@dataclass(frozen=True)
class FlowJob:
    """A video and the name (relative folder) its flow is written under."""

    source: str
    name: str


@dataclass(frozen=True)
class FlowResult:
    """status: ``done`` (extracted now), ``skipped`` (finished before, same spec) or
    ``failed`` (``message`` says why)."""

    source: str
    name: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "status": self.status,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }


def extract_video(
    job: FlowJob,
    out: Path,
    spec: FlowSpec,
    method: FlowMethod,
    decoder: str = "auto",
    overwrite: bool = False,
    progress: FrameProgress | None = None,
) -> FlowResult:
    """Extracts one video's flow under ``out``; never raises for a bad video (the result says
    what went wrong), so a batch carries on."""
    start = time.perf_counter()
    x_dir, y_dir = video_dirs(out, spec.layout, job.name)
    try:
        before = read_meta(x_dir)
        if before is not None and not overwrite:
            if before.spec == spec:
                return FlowResult(job.source, job.name, "skipped", before.frames)
            return FlowResult(
                job.source,
                job.name,
                "failed",
                message=f"{visible(x_dir)} already holds flow made another way "
                f"({_differences(before.spec, spec)}); give --overwrite to replace it, or "
                "another --out",
            )
        _clear(x_dir, y_dir)
        frames, size = _write_flow(job, x_dir, y_dir, spec, method, decoder, progress)
        meta = FlowMeta(
            job.name, job.source, frames, size[0], size[1], spec, time.perf_counter() - start
        )
        text = json.dumps(meta.to_dict(), indent=2) + "\n"
        if y_dir != x_dir:
            atomic_write_text(y_dir / META_FILE, text)
        atomic_write_text(x_dir / META_FILE, text)  # last: marks the video finished
    except ISpanError as exc:
        return FlowResult(job.source, job.name, "failed", message=str(exc))
    except Exception as exc:  # a batch survives any one video: reported as that video's failure
        return FlowResult(
            job.source, job.name, "failed", message=f"{job.source}: {type(exc).__name__}: {exc}"
        )
    return FlowResult(job.source, job.name, "done", frames, time.perf_counter() - start)


def _write_flow(
    job: FlowJob,
    x_dir: Path,
    y_dir: Path,
    spec: FlowSpec,
    method: FlowMethod,
    decoder: str,
    progress: FrameProgress | None,
) -> tuple[int, tuple[int, int]]:
    """Decodes the video in chunks (memory holds one chunk whatever the length) and writes its
    flows (and RGB frames); returns (frames, (width, height))."""
    from ispan_cli.video import open_video

    with open_video(job.source, decoder) as reader:
        n = reader.info().num_frames
        if n < 2:
            raise ISpanError(f"{job.source} has {n} frame(s); optical flow needs at least 2 frames")
        x_dir.mkdir(parents=True, exist_ok=True)
        y_dir.mkdir(parents=True, exist_ok=True)
        previous: np.ndarray | None = None  # the last frame of the previous chunk
        size = (0, 0)
        for first in range(0, n, method.batch):
            chunk = reader.read(range(first, min(first + method.batch, n)), spec.short_side)
            size = (chunk.shape[2], chunk.shape[1])
            if spec.rgb:
                for k, frame in enumerate(chunk):
                    _write_jpeg(x_dir / rgb_name(first + k + 1), frame[..., ::-1])  # RGB->BGR
            frames = chunk if previous is None else np.concatenate([previous[None], chunk])
            flows = method.flows(frames)  # (F, H, W, 2) for the F consecutive pairs
            base = first if previous is None else first - 1  # 0-based index of flows[0]'s start
            for k, flow in enumerate(flows):
                x_name, y_name = flow_names(spec.layout, base + k + 1)
                _write_jpeg(x_dir / x_name, quantise(flow[..., 0], spec.bound))
                _write_jpeg(y_dir / y_name, quantise(flow[..., 1], spec.bound))
            previous = chunk[-1]
            if progress:
                progress(len(chunk))
    return n, size


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ISpanError(f"cannot encode {visible(path)} as JPEG")
    try:
        path.write_bytes(data.tobytes())
    except OSError as exc:
        raise ISpanError(
            f"cannot write {visible(path)} ({exc.strerror}); check that --out is writable and "
            "has space"
        ) from None


def _clear(*folders: Path) -> None:
    """Removes what an earlier, unfinished run left (flow, RGB frames, a record): a partial
    video is redone from its first frame."""
    for folder in dict.fromkeys(folders):
        if not folder.is_dir():
            continue
        for pattern in ("flow_x_*.jpg", "flow_y_*.jpg", "img_*.jpg", "frame*.jpg", META_FILE):
            for path in folder.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _differences(old: FlowSpec, new: FlowSpec) -> str:
    a, b = old.to_dict(), new.to_dict()
    keys = [k for k in a if a[k] != b.get(k)]
    return ", ".join(f"{k} {a[k]!r} there, {b.get(k)!r} asked" for k in keys) or "same spec"
