"""Video-level metrics from per-video scores: top-1/top-5, mean class accuracy, confusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoMetrics:
    """top1/top5: fractions of videos; mean_class: mean over classes that have test videos of
    each class's top-1 accuracy; confusion[i, j]: videos of class i predicted as j."""

    videos: int
    top1: float
    top5: float
    mean_class: float
    confusion: np.ndarray
    per_class: np.ndarray  # (C,) top-1 accuracy, NaN for classes without videos
    counts: np.ndarray  # (C,) videos per class

    def summary(self) -> dict[str, float | int]:
        return {
            "videos": self.videos,
            "top1": self.top1,
            "top5": self.top5,
            "mean_class_accuracy": self.mean_class,
        }


def video_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> VideoMetrics:
    """``scores`` (N, C) per-video class scores, ``labels`` (N,) true classes."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    if n == 0:
        nan = float("nan")
        return VideoMetrics(
            0,
            nan,
            nan,
            nan,
            confusion,
            np.full(num_classes, np.nan),
            np.zeros(num_classes, np.int64),
        )
    pred = scores.argmax(1)
    k = min(5, num_classes)
    # ties broken by index, as argmax does: a class is in the top k if fewer than k beat it
    true_score = scores[np.arange(n), labels]
    better = (scores > true_score[:, None]).sum(1)
    np.add.at(confusion, (labels, pred), 1)
    counts = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, np.diag(confusion) / counts, np.nan)
    return VideoMetrics(
        videos=n,
        top1=float((pred == labels).mean()),
        top5=float((better < k).mean()),
        mean_class=float(np.nanmean(per_class)),
        confusion=confusion,
        per_class=per_class,
        counts=counts,
    )


def video_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of per-video logits ``scores`` (N, C) against ``labels`` (N,); NaN
    for no videos. What ``--monitor loss`` watches."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return float("nan")
    shifted = scores - scores.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())
