"""Late fusion of two-stream (or more) scores: the weighted sum of each stream's per-video class
scores, as TSN fuses its RGB and flow networks (RGB 1, flow 1.5 in its paper).

TSN fuses the raw class scores (``tools/eval_scores.py``: no softmax); MMAction2's
``report_accuracy.py`` can apply a softmax to each stream first. Both are offered: ``softmax``
False (the default) sums the logits ``evaluate`` saved, True sums probabilities.

The inputs are ``video_scores.jsonl`` files as ``ispan evaluate --output`` writes them (one
JSON object per video: video, label, label_index, predicted, logits in the dataset's class
order). Every stream must score the same videos with the same labels and class count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispan_cli.engine.metrics import VideoMetrics, video_metrics
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.model_folder import atomic_open, atomic_write_text
from ispan_cli.terminal import visible

SCORES_FILE = "video_scores.jsonl"


@dataclass(frozen=True)
class StreamScores:
    """One stream's saved scores: ``logits`` (N, C) in ``videos`` order."""

    path: str
    videos: tuple[str, ...]
    labels: np.ndarray  # (N,) label indices
    logits: np.ndarray  # (N, C)
    names: dict[int, str]  # label index -> class name, for the classes that appear


def fuse_scores(
    scores: Sequence[np.ndarray], weights: Sequence[float], softmax: bool = False
) -> np.ndarray:
    """sum_i w_i * s_i over the streams' (N, C) scores; with ``softmax`` each stream's
    scores become probabilities first (per video, over classes)."""
    if len(scores) != len(weights):
        raise UsageError(f"{len(weights)} weight(s) for {len(scores)} score file(s); give one each")
    fused = np.zeros_like(np.asarray(scores[0], np.float64))
    for s, w in zip(scores, weights, strict=True):
        s = np.asarray(s, np.float64)
        if softmax:
            e = np.exp(s - s.max(axis=1, keepdims=True))
            s = e / e.sum(axis=1, keepdims=True)
        fused += float(w) * s
    return fused


def read_scores(path: str | Path) -> StreamScores:
    """A ``video_scores.jsonl`` (or the folder holding one); each mistake is one error naming
    the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_FILE
    if not path.is_file():
        raise ISpanError(
            f"{visible(path)} does not exist; give the video_scores.jsonl that `ispan evaluate "
            "--output DIR` writes (DIR/video_scores.jsonl, DIR/splitN/ with --split all)"
        )
    videos, labels, rows, names = [], [], [], {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{visible(path)}:{n}"
        try:
            rec = json.loads(line)
            video, label = str(rec["video"]), int(rec["label_index"])
            logits = [float(v) for v in rec["logits"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ISpanError(
                f"{where} is not a video score record (video, label_index, logits)"
            ) from None
        if rows and len(logits) != len(rows[0]):
            raise ISpanError(f"{where} has {len(logits)} class scores, line 1 has {len(rows[0])}")
        if not all(math.isfinite(v) for v in logits) or not 0 <= label < len(logits):
            raise ISpanError(f"{where}: non-finite scores or a label index outside the classes")
        if "label" in rec and names.setdefault(label, str(rec["label"])) != str(rec["label"]):
            raise ISpanError(f"{where}: class {label} is named both {names[label]!r} and "
                             f"{rec['label']!r}")  # fmt: skip
        videos.append(video)
        labels.append(label)
        rows.append(logits)
    if not rows:
        raise ISpanError(f"{visible(path)} holds no video scores")
    if len(set(videos)) != len(videos):
        raise ISpanError(f"{visible(path)} scores some videos twice")
    return StreamScores(
        str(path), tuple(videos), np.asarray(labels, np.int64), np.asarray(rows), names
    )


def _short_key(video: str) -> str:
    p = Path(video)
    return f"{p.parent.name}/{p.stem}"


def align(streams: Sequence[StreamScores]) -> list[StreamScores]:
    """The streams with their rows in the first one's video order, after checking that all
    score the same videos (by path; by ``<class>/<video>`` when the paths differ only in
    their root or suffix) with the same labels and class count."""
    first = streams[0]
    keyed = [s.videos for s in streams]
    if any(set(v) != set(first.videos) for v in keyed):
        shorts = [tuple(_short_key(v) for v in s.videos) for s in streams]
        if all(len(set(k)) == len(k) for k in shorts) and all(
            set(k) == set(shorts[0]) for k in shorts
        ):
            keyed = shorts
        else:
            _mismatch(streams)
    out = []
    for s, keys in zip(streams, keyed, strict=True):
        if s.logits.shape[1] != first.logits.shape[1]:
            raise ISpanError(
                f"{visible(s.path)} has {s.logits.shape[1]} classes, {visible(first.path)} "
                f"{first.logits.shape[1]}: fuse streams evaluated on the same dataset"
            )
        row = {k: i for i, k in enumerate(keys)}
        order = np.array([row[k] for k in keyed[0]], np.int64)
        labels = s.labels[order]
        if not np.array_equal(labels, first.labels):
            bad = int(np.flatnonzero(labels != first.labels)[0])
            raise ISpanError(
                f"{visible(first.videos[bad])} has label {int(first.labels[bad])} in "
                f"{visible(first.path)} but {int(labels[bad])} in {visible(s.path)}: the class "
                "orders differ; fuse streams evaluated on the same dataset and split"
            )
        clash = [i for i, n in s.names.items() if first.names.get(i, n) != n]
        if clash:
            i = clash[0]
            raise ISpanError(
                f"class {i} is {first.names[i]!r} in {visible(first.path)} but {s.names[i]!r} "
                f"in {visible(s.path)}: the class orders differ"
            )
        out.append(
            StreamScores(s.path, first.videos, labels, s.logits[order], {**first.names, **s.names})
        )
    return out


def _mismatch(streams: Sequence[StreamScores]) -> None:
    first = set(streams[0].videos)
    for s in streams[1:]:
        only_a = sorted(first - set(s.videos))
        only_b = sorted(set(s.videos) - first)
        if only_a or only_b:
            example = visible((only_a or only_b)[0])
            side = streams[0].path if only_a else s.path
            raise ISpanError(
                f"{visible(streams[0].path)} and {visible(s.path)} do not score the same videos "
                f"({len(only_a)} only in the first, {len(only_b)} only in the second, e.g. "
                f"{example} only in {visible(side)}); evaluate both streams on the same split"
            )


@dataclass(frozen=True)
class FusionReport:
    files: tuple[str, ...]
    weights: tuple[float, ...]
    softmax: bool
    streams: tuple[VideoMetrics, ...]
    fused: VideoMetrics
    aligned: tuple[StreamScores, ...]
    fused_scores: np.ndarray  # (N, C)

    def to_dict(self) -> dict[str, Any]:
        return {
            "videos": self.fused.videos,
            "classes": int(self.fused_scores.shape[1]),
            "scores": "probabilities (softmax per stream)" if self.softmax else "logits",
            "streams": [
                {"file": f, "weight": w, **m.summary()}
                for f, w, m in zip(self.files, self.weights, self.streams, strict=True)
            ],
            "fused": self.fused.summary(),
        }


def check_weights(
    weights: Sequence[float] | None,
    streams: int,
    option: str = "--weights",
    what: str = "score file",
) -> tuple[float, ...]:
    """One finite, non-negative weight per stream, not all zero (None: equal weights)."""
    values = tuple(float(w) for w in (weights or [1.0] * streams))
    if len(values) != streams:
        raise UsageError(
            f"{option}: {len(values)} weight(s) for {streams} {what}(s); give one each"
        )
    if any(not math.isfinite(w) or w < 0 for w in values) or not any(values):
        raise UsageError(f"{option} must be finite, non-negative and not all zero")
    return values


def fuse_files(
    files: Sequence[str | Path], weights: Sequence[float] | None = None, softmax: bool = False
) -> FusionReport:
    """Reads, aligns and fuses the streams' saved scores; metrics of each and of the fusion."""
    if len(files) < 2:
        raise UsageError("give at least two video_scores.jsonl files to fuse")
    weights = check_weights(weights, len(files))
    streams = align([read_scores(f) for f in files])
    n_classes = streams[0].logits.shape[1]
    labels = streams[0].labels
    fused = fuse_scores([s.logits for s in streams], weights, softmax)
    return FusionReport(
        tuple(s.path for s in streams),
        weights,
        softmax,
        tuple(video_metrics(s.logits, labels, n_classes) for s in streams),
        video_metrics(fused, labels, n_classes),
        tuple(streams),
        fused,
    )


def check_output(folder: Path, files: Sequence[str | Path]) -> None:
    """Before reading the scores: ``--output`` must not replace what was fused, nor an
    evaluation's metrics. ``fuse eval-rgb eval-flow -o eval-rgb`` wrote the fused scores over
    the RGB stream's, so fusing again with other weights fused the fusion."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output {visible(folder)} is a file; give a folder")
    target = (folder / SCORES_FILE).resolve()
    for f in files:
        given = Path(f) / SCORES_FILE if Path(f).is_dir() else Path(f)
        if given.resolve() == target:
            raise UsageError(
                f"--output {visible(folder)} holds {visible(given)}, one of the scores being "
                "fused, which the fused scores would replace; give another folder, e.g. fused/"
            )
    metrics = folder / "metrics.json"
    if metrics.is_file():
        try:
            fused_before = "fused" in json.loads(metrics.read_text(encoding="utf-8"))
        except (ValueError, OSError, TypeError):
            fused_before = False
        if not fused_before:
            raise UsageError(
                f"--output {visible(folder)} holds another command's metrics.json (an "
                "evaluation's?), which the fusion's would replace; give another folder, e.g. "
                "fused/"
            )


def write_fused(report: FusionReport, folder: str | Path) -> None:
    """``folder/video_scores.jsonl`` (the fused scores, in the same format, so fused scores can
    be fused again) and ``folder/metrics.json``, each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first = report.aligned[0]
    with atomic_open(folder / SCORES_FILE) as fh:
        for video, label, row in zip(first.videos, first.labels, report.fused_scores, strict=True):
            pred = int(row.argmax())
            rec = {
                "video": video,
                "label": first.names.get(int(label), str(int(label))),
                "label_index": int(label),
                "predicted": first.names.get(pred, str(pred)),
                "logits": [round(float(v), 6) for v in row],
            }
            fh.write(json.dumps(rec) + "\n")
    atomic_write_text(folder / "metrics.json", json.dumps(report.to_dict(), indent=2) + "\n")
