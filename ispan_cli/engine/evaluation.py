"""``evaluate``: a model folder on the test videos of one or all official splits, with the
protocol metrics and the files people ask for (per-class CSV, confusion CSV/PNG, per-video
scores for late fusion)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispan_cli.data import load_dataset
from ispan_cli.data.check import CACHE_FILE, REASONS
from ispan_cli.data.clips import ClipSettings
from ispan_cli.data.items import DatasetSplit
from ispan_cli.data.skips import SkipReport, check_split
from ispan_cli.engine.config import check_fraction
from ispan_cli.engine.distributed import World
from ispan_cli.engine.evaluate_options import EvaluateOptions
from ispan_cli.engine.metrics import VideoMetrics, video_metrics
from ispan_cli.engine.scoring import Scores, score_videos
from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_open, atomic_path, atomic_write_text

# Called with (split, videos done, videos in the split): the check, then the scoring.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class SplitResult:
    split: int
    metrics: VideoMetrics
    skipped: SkipReport  # listed test videos not scored: missing, rejected by the check, failed
    folder: Path | None


@dataclass(frozen=True)
class EvalReport:
    model: str
    dataset: str
    views: str
    splits: tuple[SplitResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per-split metrics, and mean/std over splits when there are several."""
        per = {
            str(s.split): {
                **s.metrics.summary(),
                "skipped": len(s.skipped.skipped),
                "skipped_by_reason": s.skipped.by_reason(),
            }
            for s in self.splits
        }
        out: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "views": self.views,
            "splits": per,
        }
        if len(self.splits) > 1:
            for key in ("top1", "top5", "mean_class_accuracy"):
                values = np.array([s.metrics.summary()[key] for s in self.splits], np.float64)
                # population std over the three official splits, as papers report it
                out[key] = {"mean": float(values.mean()), "std": float(values.std())}
        return out


def evaluate(
    options: EvaluateOptions,
    progress: Progress | None = None,
    check_progress: Progress | None = None,
) -> EvalReport:
    """Loads ``options.model``, checks the test videos of each split (in ``workers`` processes;
    cached in ``output``), stops when more than ``max_skipped`` of a split's listed test videos
    cannot be used, then scores each usable video once and computes video-level metrics."""
    from ispan_cli.runtime.loading import load_model

    o = options
    check_fraction(o.max_skipped)
    loaded = load_model(o.model, device=o.device, timeout=o.timeout)
    model, config, torch_device = loaded.model, loaded.config, loaded.device
    spec = dataclasses.replace(loaded.preprocessing, crops=o.crops)
    k = o.segments or loaded.sampling.segments
    world = World(0, 1, 0, torch_device)
    results = []
    for split in o.splits:
        data = load_dataset(o.dataset, o.data_root, split, o.synthetic_sizes)
        if not data.test:
            raise ISpanError(f"{o.dataset} split {split} has no test videos to evaluate")

        def checking(done: int, total: int, split: int = split) -> None:
            if check_progress:
                check_progress(split, done, total)

        cache = Path(o.output) / CACHE_FILE if o.output is not None else None
        data, skipped = check_split(
            data, ("test",), k, o.decoder, spec.resize, o.workers, cache, o.max_skipped, checking
        )
        skipped.enforce(f"{o.dataset} split {split} (test)")
        if not data.test:
            raise ISpanError(f"none of the test videos of {o.dataset} split {split} can be read")
        columns = label_columns(config.labels, data.classes, loaded.identity.id)
        settings = ClipSettings(k, spec, False, decoder=o.decoder, synthetic_seed=split)

        def report(done: int, total: int, split: int = split) -> None:
            if progress:
                progress(split, done, total)

        scores = score_videos(
            model, data.test, settings, o.batch_size, world, o.workers, None, report
        )
        logits = scores.logits[:, columns] if len(scores.logits) else scores.logits
        metrics = video_metrics(logits, scores.labels, len(data.classes))
        for i, message in scores.failed:  # passed the check, failed when loaded
            skipped = skipped.with_failure(data.test[i].path, message)
        folder = None
        if o.output is not None:
            folder = Path(o.output) / (f"split{split}" if len(o.splits) > 1 else "")
            write_split_files(folder, data, scores, logits, metrics, skipped)
        results.append(SplitResult(split, metrics, skipped, folder))
    views = f"K={k} TSN centre frames x {o.crops} crop(s), logits averaged over crops and segments"
    report_ = EvalReport(loaded.identity.display, o.dataset, views, tuple(results))
    if o.output is not None:
        Path(o.output).mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            Path(o.output) / "metrics.json", json.dumps(report_.to_dict(), indent=2) + "\n"
        )
    return report_


def label_columns(model_labels: tuple[str, ...], classes: tuple[str, ...], model: str) -> list[int]:
    """For each dataset class, the model's logit column with that label (case-insensitive), so a
    model whose label order differs from the dataset's is still scored right."""
    if not model_labels:
        raise ISpanError(f"{model} has no labels in config.json; it cannot be evaluated by name")
    index = {name.lower(): i for i, name in enumerate(model_labels)}
    absent = [c for c in classes if c.lower() not in index]
    if absent:
        raise ISpanError(
            f"{model} does not know {len(absent)} of the dataset's {len(classes)} classes (e.g. "
            f"{absent[:3]}); its labels are e.g. {list(model_labels[:3])}: evaluate a model "
            "trained on this dataset"
        )
    return [index[c.lower()] for c in classes]


def write_split_files(
    folder: Path,
    data: DatasetSplit,
    scores: Scores,
    logits: np.ndarray,
    metrics: VideoMetrics,
    skipped: SkipReport,
) -> None:
    """per_class.csv, confusion.csv, confusion.png, video_scores.jsonl, skipped.txt (one
    "path<TAB>reason<TAB>message" line per listed video that was not scored), each written
    atomically: a killed run leaves the previous file as it was."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = data.classes
    with atomic_open(folder / "per_class.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "class", "videos", "correct", "accuracy"])
        for i, name in enumerate(classes):
            acc = metrics.per_class[i]
            w.writerow(
                [
                    i,
                    name,
                    int(metrics.counts[i]),
                    int(metrics.confusion[i, i]),
                    "" if math.isnan(acc) else f"{acc:.6f}",
                ]
            )
    with atomic_open(folder / "confusion.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true \\ predicted", *classes])
        for i, name in enumerate(classes):
            w.writerow([name, *metrics.confusion[i].tolist()])
    with atomic_open(folder / "video_scores.jsonl") as fh:
        for row, item_index in enumerate(scores.indices):
            item = data.test[item_index]
            fh.write(
                json.dumps(
                    {
                        "video": item.path,
                        "label": classes[item.label],
                        "label_index": item.label,
                        "predicted": classes[int(logits[row].argmax())],
                        "logits": [round(float(v), 6) for v in logits[row]],
                    }
                )
                + "\n"
            )
    atomic_write_text(
        folder / "skipped.txt",
        "".join(
            f"{s.path}\t{s.reason}\t{' '.join(s.message.split()) or REASONS.get(s.reason or '')}\n"
            for s in skipped.skipped
        ),
    )
    plot_confusion(folder / "confusion.png", metrics.confusion, classes)


def plot_confusion(path: Path, confusion: np.ndarray, classes: tuple[str, ...]) -> None:
    """Row-normalised confusion matrix (each true class sums to 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    side = min(max(4.0, 0.16 * n + 3), 22.0)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    if n <= 60:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=max(4, 9 - n // 15))
        ax.set_yticks(range(n), classes, fontsize=max(4, 9 - n // 15))
    ax.set(xlabel="predicted", ylabel="true", title="confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
