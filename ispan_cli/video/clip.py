"""A video file to model input: TSN test sampling, decoding at the model's scale, preprocessing.

The one path every consumer takes from a file to a clip (classify, export verification and
calibration, benchmarks), so they all feed the model the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ispan_cli.video.extract import sample_video
from ispan_cli.video.preprocess import PreprocessSpec, preprocess
from ispan_cli.video.sampling import TSNSampler


@dataclass
class Clip:
    """A video's model input and how it was obtained."""

    path: str
    data: np.ndarray  # (crops, K, 3, S, S) float32
    indices: list[int]
    timestamps: list[float]
    repeated: bool
    decode_ms: float
    preprocess_ms: float


def load_clip(
    path: str,
    segments: int,
    spec: PreprocessSpec,
    decoder: str,
    stream: int | None = None,
    threads: int = 0,
) -> Clip:
    """Samples K segment centres (TSN test sampling), decodes them scaled (``threads``: FFmpeg's
    decoding threads, 0 its own choice), preprocesses."""
    start = time.perf_counter()
    sampled = sample_video(path, TSNSampler(segments), decoder, spec.resize, stream, threads)
    decoded = time.perf_counter()
    data = preprocess(sampled.frames[0], spec)  # the one view: (K, H, W, 3) -> (crops, K, 3, S, S)
    done = time.perf_counter()
    return Clip(
        path=path,
        data=data,
        indices=[int(i) for i in sampled.sampling.indices[0]],
        timestamps=[float(t) for t in sampled.sampling.timestamps[0]],
        repeated=bool(sampled.sampling.repeated),
        decode_ms=(decoded - start) * 1e3,
        preprocess_ms=(done - decoded) * 1e3,
    )
