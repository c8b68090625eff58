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
from ispan_cli.data.flow_clips import recorded_flow_spec, with_flow
from ispan_cli.data.items import DatasetSplit
from ispan_cli.data.skips import SkipReport, check_split
from ispan_cli.engine.config import check_fraction
from ispan_cli.engine.distributed import World
from ispan_cli.engine.evaluate_options import EvaluateOptions
from ispan_cli.engine.fusion import check_weights, fuse_scores
from ispan_cli.engine.metrics import VideoMetrics, video_metrics
from ispan_cli.engine.scoring import Scores, score_videos
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.model_folder import atomic_open, atomic_path, atomic_write_text
from ispan_cli.terminal import visible
from ispan_cli.video.flow_spec import FlowSpec, check_flow_fits

# Called with (split, videos done, videos in the split): the check, then the scoring.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class SplitResult:
    split: int
    metrics: VideoMetrics  # the model's; with two streams, the fused scores'
    skipped: SkipReport  # listed test videos not scored: missing, rejected by the check, failed
    folder: Path | None
    streams: tuple[VideoMetrics, ...] = ()  # two streams: each one's, in EvalReport.streams order


@dataclass(frozen=True)
class EvalReport:
    model: str
    dataset: str
    views: str
    splits: tuple[SplitResult, ...]
    streams: tuple[str, ...] = ()  # two streams: (rgb model, flow model) names
    weights: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per-split metrics, and mean/std over splits when there are several. With
        two streams the metrics are the fused ones, and ``streams`` holds each stream's."""
        per = {}
        for s in self.splits:
            per[str(s.split)] = {
                **s.metrics.summary(),
                "skipped": len(s.skipped.skipped),
                "skipped_by_reason": s.skipped.by_reason(),
            }
            if s.streams:
                per[str(s.split)]["streams"] = {
                    kind: m.summary() for kind, m in zip(STREAMS, s.streams, strict=True)
                }
        out: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "views": self.views,
            "splits": per,
        }
        if self.streams:
            out["streams"] = {
                kind: {"model": name, "weight": w}
                for kind, name, w in zip(STREAMS, self.streams, self.weights, strict=True)
            }
        if len(self.splits) > 1:
            for key in ("top1", "top5", "mean_class_accuracy"):
                out[key] = _mean_std([s.metrics for s in self.splits], key)
                for i, kind in enumerate(STREAMS[: len(self.streams)]):
                    out["streams"][kind][key] = _mean_std([s.streams[i] for s in self.splits], key)
        return out


STREAMS = ("rgb", "flow")


def _mean_std(metrics: list[VideoMetrics], key: str) -> dict[str, float]:
    values = np.array([m.summary()[key] for m in metrics], np.float64)
    # population std over the three official splits, as papers report it
    return {"mean": float(values.mean()), "std": float(values.std())}


@dataclass(frozen=True)
class _Stream:
    """One model to score: loaded, with the preprocessing, K and (flow) FlowSpec it reads."""

    loaded: Any
    spec: Any  # PreprocessSpec with the asked crops
    segments: int
    flow: FlowSpec | None


def _load_streams(o: EvaluateOptions) -> list[_Stream]:
    """The model, and with ``flow_model`` the flow stream, each checked for its role."""
    from ispan_cli.runtime.loading import load_model

    streams = []
    for spec in (o.model, o.flow_model) if o.flow_model else (o.model,):
        loaded = load_model(spec, device=o.device, timeout=o.timeout)
        streams.append(
            _Stream(
                loaded,
                dataclasses.replace(loaded.preprocessing, crops=o.crops),
                o.segments or loaded.sampling.segments,
                loaded.flow,
            )
        )
    if o.flow_model:
        rgb, flow = streams
        if rgb.flow is not None:
            raise UsageError(
                f"--model {rgb.loaded.identity.id} is a flow model; give the RGB stream as "
                "--model and the flow stream as --flow-model"
            )
        if flow.flow is None:
            raise UsageError(
                f"--flow-model {flow.loaded.identity.id} is an RGB model (3 input channels); "
                "give a flow model (ispan train --modality flow)"
            )
        check_weights(o.fusion_weights, 2, "--fusion-weights", "stream")
    if any(s.flow is not None for s in streams) and not o.flow_root:
        raise UsageError(
            "a flow model reads extracted flow: give --flow-root DIR (the folder `ispan flow "
            "extract` wrote for the dataset's videos)"
        )
    if o.crops != 1 and any(s.flow is not None for s in streams):
        raise UsageError("a flow model is evaluated on one centre crop; drop --crops")
    return streams


def evaluate(
    options: EvaluateOptions,
    progress: Progress | None = None,
    check_progress: Progress | None = None,
) -> EvalReport:
    """Loads ``options.model`` (and ``flow_model``), checks the test videos of each split (in
    ``workers`` processes; cached in ``output``), stops when more than ``max_skipped`` of a
    split's listed test videos cannot be used, then scores each usable video once per stream
    and computes video-level metrics: each stream's and, with two, the fused ones (the
    weighted sum of their scores, ``ispan_cli.engine.fusion``) on the videos both scored."""
    o = options
    check_fraction(o.max_skipped)
    if o.output is not None:
        check_output_folder(Path(o.output), o.splits)
    streams = _load_streams(o)
    first = streams[0]
    world = World(0, 1, 0, first.loaded.device)
    weights = (
        check_weights(o.fusion_weights, 2, "--fusion-weights", "stream") if o.flow_model else ()
    )
    results = []
    for split in o.splits:
        data = load_dataset(o.dataset, o.data_root, split, o.synthetic_sizes)
        if not data.test:
            raise ISpanError(f"{o.dataset} split {split} has no test videos to evaluate")
        if any(s.flow is not None for s in streams):
            if not Path(o.flow_root).is_dir():
                raise UsageError(
                    f"--flow-root {visible(o.flow_root)} is not a folder; extract the dataset's "
                    "flow with `ispan flow extract`"
                )
            # flow made another way than a model expects: one line, before any scoring (flow
            # from other tools has no records, and is taken as it is)
            made = recorded_flow_spec(o.flow_root, data.test, o.data_root)
            for stream in streams:
                if stream.flow is not None and made is not None:
                    check_flow_fits(stream.flow, made, f"--flow-root {visible(o.flow_root)}")

        def checking(done: int, total: int, split: int = split) -> None:
            if check_progress:
                check_progress(split, done, total)

        cache = Path(o.output) / CACHE_FILE if o.output is not None else None
        data, skipped = check_split(
            data, ("test",), first.segments, o.decoder, first.spec.resize, o.workers, cache,
            o.max_skipped, checking,
        )  # fmt: skip
        skipped.enforce(f"{o.dataset} split {split} (test)")
        if not data.test:
            raise ISpanError(f"none of the test videos of {o.dataset} split {split} can be read")
        scored = []
        for n, stream in enumerate(streams):

            def report(done: int, total: int, split: int = split, n: int = n) -> None:
                if progress:  # the streams one after the other on one bar
                    progress(split, n * total + done, len(streams) * total)

            settings = ClipSettings(
                stream.segments, stream.spec, False, decoder=o.decoder, synthetic_seed=split
            )
            settings = with_flow(settings, stream.flow, o.flow_root, o.data_root)
            scores = score_videos(
                stream.loaded.model, data.test, settings, o.batch_size, world, o.workers, None,
                report,
            )  # fmt: skip
            columns = label_columns(stream.loaded.labels, data.classes, stream.loaded.identity.id)
            for i, message in scores.failed:  # passed the check, failed when loaded
                skipped = skipped.with_failure(data.test[i].path, message)
            scored.append((scores, columns))
        scores, per_stream = _common(scored)
        labels = scores.labels
        n_classes = len(data.classes)
        stream_metrics = tuple(video_metrics(lg, labels, n_classes) for lg in per_stream)
        if len(streams) == 1:
            logits, metrics, stream_metrics = per_stream[0], stream_metrics[0], ()
        else:
            logits = fuse_scores(per_stream, weights, o.fusion_softmax).astype(np.float32)
            metrics = video_metrics(logits, labels, n_classes)
        folder = None
        if o.output is not None:
            folder = Path(o.output) / (f"split{split}" if len(o.splits) > 1 else "")
            if len(streams) == 1:
                write_split_files(folder, data, scores, logits, metrics, skipped)
            else:  # each stream's files (fusable again with `ispan fuse`), and the fused ones
                for kind, lg, m in zip(STREAMS, per_stream, stream_metrics, strict=True):
                    write_split_files(folder / kind, data, scores, lg, m, skipped)
                write_split_files(folder / "fused", data, scores, logits, metrics, skipped)
        results.append(SplitResult(split, metrics, skipped, folder, stream_metrics))
    views = (
        f"K={first.segments} TSN centre frames x {o.crops} crop(s), logits averaged over crops "
        "and segments"
    )
    names: tuple[str, ...] = ()
    if len(streams) > 1:
        flow = streams[1]
        views += (
            f"; flow stream: K={flow.segments} stacks of L={flow.flow.length} flows, fused "
            f"{' + '.join(f'{w:g} x {k}' for k, w in zip(STREAMS, weights, strict=True))}"
            + (" (probabilities)" if o.fusion_softmax else " (logits)")
        )
        names = tuple(s.loaded.identity.display for s in streams)
    report_ = EvalReport(
        " + ".join(s.loaded.identity.display for s in streams), o.dataset, views,
        tuple(results), names, weights,
    )  # fmt: skip
    if o.output is not None:
        Path(o.output).mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            Path(o.output) / "metrics.json",
            json.dumps({**report_.to_dict(), "command": o.command}, indent=2) + "\n",
        )
        if len(streams) == 1:  # report.html: the page `ispan report` writes, for one stream
            from ispan_cli.engine.html_report import write_report

            write_report(o.output)
    return report_


def _common(scored: list[tuple[Scores, list[int]]]) -> tuple[Scores, list[np.ndarray]]:
    """The videos every stream scored (a video one stream could not read counts for none), and
    each stream's logits on them in the dataset's class order."""
    keep = scored[0][0].indices
    for scores, _ in scored[1:]:
        keep = np.intersect1d(keep, scores.indices)
    per_stream = []
    for scores, columns in scored:
        rows = np.searchsorted(scores.indices, keep)
        logits = scores.logits[rows][:, columns] if len(keep) else np.zeros((0, len(columns)))
        per_stream.append(logits.astype(np.float32))
    first = scored[0][0]
    rows = np.searchsorted(first.indices, keep)
    common = Scores(keep, per_stream[0], first.labels[rows], first.failed)
    return common, per_stream


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


def check_output_folder(output: Path, splits: tuple[int, ...] = (1,)) -> None:
    """Before any work: ``--output`` is a folder, and not a training run's, whose report.html
    (and with ``ispan report`` which kind of folder it is) the evaluation's files would
    replace. A file there failed as an unexpected error once every video was scored. An
    evaluation of another kind (one split's files at the top, or --split all's in splitN/) is
    not mixed with: its metrics.json, mean and std included, was replaced while the other
    kind's files stayed beside the new ones."""
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"--output {visible(output)} is a file; give a folder for the evaluation's files "
            "(metrics.json, per_class.csv, video_scores.jsonl, ...)"
        )
    from ispan_cli.engine.checkpoint import CHECKPOINTS
    from ispan_cli.engine.report import METRICS_JSONL

    if (output / CHECKPOINTS).is_dir() or (output / METRICS_JSONL).is_file():
        raise UsageError(
            f"--output {visible(output)} holds a training run, whose report.html and files the "
            f"evaluation would replace; write it to another folder, e.g. {visible(output / 'eval')}"
        )
    try:
        before = json.loads((output / "metrics.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no evaluation there (or not one of ours): nothing to mix with
    if isinstance(before, dict) and before and (len(before) > 1) != (len(splits) > 1):
        held = ", ".join(str(k) for k in before)
        asked = ", ".join(str(k) for k in splits)
        raise UsageError(
            f"--output {visible(output)} holds an evaluation of split(s) {held}, whose "
            f"metrics.json an evaluation of split(s) {asked} would replace while its other files "
            "stay; write it to another folder"
        )


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
