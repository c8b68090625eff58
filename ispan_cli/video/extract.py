"""Sampling a video end to end: probe, choose frames, fetch them, and save them as images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.video.decoder import open_video
from ispan_cli.video.info import VideoInfo
from ispan_cli.video.reader import VideoReader
from ispan_cli.video.sampling import FrameSampling, Sampler


@dataclass(frozen=True)
class SampledFrames:
    """The frames a sampler chose: ``frames`` is (V, K, H, W, 3) uint8 RGB, aligned with
    ``sampling.indices`` (V, K)."""

    info: VideoInfo
    sampling: FrameSampling
    frames: np.ndarray


def sample_video(
    path: str | Path,
    sampler: Sampler,
    decoder: str = "auto",
    short_side: int | None = None,
    stream: int | None = None,
    threads: int = 0,
) -> SampledFrames:
    """Opens ``path``, samples it and fetches every chosen frame (each distinct frame once).

    short_side: scale frames in the decoder so their shorter side has this many pixels.
    stream: the container stream to read (None: the one ffmpeg would choose).
    threads: FFmpeg's decoding threads (0: its own choice).
    For long videos with many views use :func:`iter_views`, which holds one view at a time.
    """
    with open_video(path, decoder, stream, threads=threads) as reader:
        info = reader.info()
        sampling = sampler.sample(reader.frame_times(), info.duration)
        unique = sampling.unique_indices()
        frames = reader.read(unique, short_side)  # (U, H, W, 3)
    picked = frames[np.searchsorted(unique, sampling.indices)]  # (V, K, H, W, 3)
    return SampledFrames(info, sampling, picked)


def sample_indices(
    path: str | Path, sampler: Sampler, decoder: str = "auto", stream: int | None = None
) -> tuple[VideoInfo, FrameSampling]:
    """The probe and the frames ``sampler`` chooses, without fetching them (``ispan frames``
    without ``--out`` prints indices: decoding them would only cost memory)."""
    with open_video(path, decoder, stream) as reader:
        info = reader.info()
        return info, sampler.sample(reader.frame_times(), info.duration)


def iter_views(
    reader: VideoReader, sampling: FrameSampling, short_side: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (view number, (K, H, W, 3) frames) one view at a time: memory holds one view,
    whatever the video's length, and the reader decodes forward between nearby views."""
    for v, row in enumerate(sampling.indices):
        yield v, reader.read(row, short_side)


def frame_filename(index: int) -> str:
    """PNG name of a frame: its index, zero-padded so names sort in time order."""
    return f"frame_{index:06d}.png"


def save_frames(sampled: SampledFrames, out_dir: str | Path) -> list[Path]:
    """Writes each distinct sampled frame to ``out_dir`` as ``frame_<index>.png``.

    Returns one path per sampled position (V*K, row-major); repeated frames share a file.
    """
    import cv2

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ISpanError(f"{out_dir} exists and is not a folder; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    written: set[int] = set()
    flat_idx = sampled.sampling.indices.reshape(-1)
    flat_frames = sampled.frames.reshape(-1, *sampled.frames.shape[2:])
    for index, frame in zip(flat_idx.tolist(), flat_frames, strict=True):
        path = out_dir / frame_filename(index)
        if index not in written:
            try:
                ok = cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]))  # RGB -> BGR
            except cv2.error:
                ok = False
            if not ok:
                raise ISpanError(f"cannot write {path}; check that the folder is writable")
            written.add(index)
        paths.append(path)
    return paths
