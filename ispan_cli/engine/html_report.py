"""``ispan report``: one self-contained HTML page for a training run or an ``evaluate --output``
folder. Images are embedded as data URIs and there is no script or remote resource, so the file
opens anywhere without a network. Every string from the run (class names, paths, the command) is
escaped: it is data, never markup.

Besides the run's own files the page shows a sample frame of a video of each class of the most
confused pairs and the attention of a few validation clips (``report_images``): the videos are
those the folder records (an evaluation's ``video_scores.jsonl``; a run's dataset settings), the
model its best model folder or the evaluated model. A picture that cannot be made says why in
its place; the page is written either way.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ispan_cli.engine.report_images import (
    FAILURES,
    Picture,
    Reading,
    Video,
    attention_clip,
    load_attention_runner,
    sample_frame,
    sheet_videos,
)
from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_write_text

REPORT_HTML = "report.html"
CONFUSION_CSV = "confusion.csv"  # evaluate --output's, and the run's (best epoch, val_ prefix)
RUN_CONFUSION_CSV = "val_confusion.csv"
PAIRS_SHOWN = 10


@dataclass(frozen=True)
class ReportSource:
    kind: str  # "train" or "evaluate"
    folder: Path
    title: str
    settings: dict[str, Any]
    command: str
    images: list[tuple[str, Path]]  # (caption, png)
    confusion: list[list[int]] | None
    classes: list[str]
    figures: list[tuple[str, str]]  # (name, value) for the headline table
    videos: list[Video] = field(default_factory=list)  # the validation videos, as recorded
    videos_note: str = ""  # why there are none
    reading: Reading = field(default_factory=Reading)
    model: tuple[str, str] | None = None  # (spec, runtime) of the model whose attention is shown
    model_note: str = ""  # why there is none


@dataclass(frozen=True)
class Pictures:
    """What the page shows beside the run's own images."""

    pairs: list[tuple[Picture, Picture]]  # one (true class, predicted class) per confused pair
    attention: list[Picture]
    attention_note: str = ""  # why there is no attention sheet


def write_confusion_csv(path: Path, confusion, classes: tuple[str, ...]) -> None:
    """The confusion matrix as evaluate writes it (``true \\ predicted`` header)."""
    rows = [["true \\ predicted", *classes]]
    rows += [[name, *(int(v) for v in confusion[i])] for i, name in enumerate(classes)]
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_confusion(path: Path) -> tuple[list[str], list[list[int]]] | None:
    if not path.is_file():
        return None
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        classes = rows[0][1:]
        matrix = [[int(v) for v in row[1:]] for row in rows[1:]]
    except (OSError, ValueError, IndexError, csv.Error) as exc:
        raise _unreadable(path, exc) from exc
    if len(matrix) != len(classes) or any(len(row) != len(classes) for row in matrix):
        raise _unreadable(path, ValueError(f"not a square matrix of {len(classes)} classes"))
    return classes, matrix


def _json(path: Path, lines: bool = False) -> Any:
    """``path``'s JSON document (``lines``: one per line); what ispan did not write is one error."""
    try:
        text = path.read_text()
        return [json.loads(line) for line in text.splitlines()] if lines else json.loads(text)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> ISpanError:
    return ISpanError(
        f"{path} is not as ispan writes it ({' '.join(str(exc).split())}); give the folder that "
        "train or `evaluate --output` wrote, or run it again"
    )


def _source(folder: Path) -> ReportSource:
    for name, read in (("metrics.jsonl", _train_source), ("metrics.json", _eval_source)):
        if (folder / name).is_file():
            try:
                return read(folder)
            except (AttributeError, TypeError, KeyError) as exc:  # JSON of another shape
                raise _unreadable(folder / name, exc) from exc
    raise ISpanError(
        f"{folder} is neither a training run (metrics.jsonl) nor an `evaluate --output` folder "
        "(metrics.json); give one of those"
    )


def _train_source(folder: Path) -> ReportSource:
    rows = _json(folder / "metrics.jsonl", lines=True)
    config_path = folder / "best" / "config.json"
    doc = _json(config_path) if config_path.is_file() else {}
    settings = doc.get("training", {})
    metrics = doc.get("metrics", {})
    images = [(c, folder / f) for c, f in (("Training curves", "curves.png"),
              ("Learning-rate range test", "lr_find.png")) if (folder / f).is_file()]  # fmt: skip
    read = _read_confusion(folder / RUN_CONFUSION_CSV)
    # the matrix's own names first: they always match its size
    classes = list(read[0] if read else doc.get("model", {}).get("labels") or [])
    figures = [
        ("epochs run", str(len(rows))),
        ("best epoch", str(metrics.get("epoch", "n/a"))),
        ("validation top-1", _pct(metrics.get("top1"))),
        ("validation top-5", _pct(metrics.get("top5"))),
        ("mean class accuracy", _pct(metrics.get("mean_class_accuracy"))),
        ("validation videos", str(metrics.get("videos", "n/a"))),
    ]
    videos, videos_note = _run_videos(settings)
    best = folder / "best"
    model, model_note = (str(best), "torch"), ""
    if not (best / "model.safetensors").is_file():
        model, model_note = None, f"the run has no best model folder ({best} holds no weights)"
    seed = settings.get("split", 1)
    reading = Reading(seed if isinstance(seed, int) else 1, str(settings.get("decoder", "auto")))
    return ReportSource("train", folder, f"Training run {folder.resolve().name}", settings,
                        settings.get("command", ""), images, read[1] if read else None,
                        classes, figures, videos, videos_note, reading, model,
                        model_note)  # fmt: skip


def _run_videos(settings: dict[str, Any]) -> tuple[list[Video], str]:
    """The run's validation videos, listed again from its dataset settings."""
    if not settings.get("dataset"):
        return [], "the run records no dataset settings (best/config.json)"
    from ispan_cli.data.catalog import load_dataset

    try:
        sizes = (int(settings.get("synthetic_train", 0)), int(settings.get("synthetic_val", 0)))
        data = load_dataset(
            str(settings["dataset"]), settings.get("data_root"), int(settings.get("split", 1)),
            sizes,
        )  # fmt: skip
    except (*FAILURES, TypeError) as exc:
        return [], f"the run's validation videos could not be listed again: {exc}"
    return [Video(item.path, data.classes[item.label]) for item in data.test], ""


def _eval_source(folder: Path) -> ReportSource:
    doc = _json(folder / "metrics.json")
    splits = doc.get("splits", {})
    figures = [("model", str(doc.get("model", ""))), ("dataset", str(doc.get("dataset", ""))),
               ("views", str(doc.get("views", "")))]  # fmt: skip
    for split, m in splits.items():
        figures += [(f"split {split} top-1", _pct(m.get("top1"))),
                    (f"split {split} mean class", _pct(m.get("mean_class_accuracy"))),
                    (f"split {split} videos", str(m.get("videos", "")))]  # fmt: skip
    first = next(iter(splits), None)
    sub = folder if (folder / CONFUSION_CSV).is_file() else folder / f"split{first}"
    read = _read_confusion(sub / CONFUSION_CSV)
    images = (
        [("Confusion matrix", sub / "confusion.png")] if (sub / "confusion.png").is_file() else []
    )
    settings = {k: v for k, v in doc.items() if k != "splits"}
    videos, videos_note = _scored_videos(sub / "video_scores.jsonl")
    model_id = str(doc.get("model", ""))
    model = (model_id, "onnx" if model_id.lower().endswith(".onnx") else "torch")
    seed = int(first) if isinstance(first, str) and first.isdigit() else 1
    return ReportSource("evaluate", folder, f"Evaluation {folder.resolve().name}", settings,
                        str(doc.get("command", "")), images, read[1] if read else None,
                        read[0] if read else [], figures, videos, videos_note, Reading(seed),
                        model if model_id else None,
                        "metrics.json names no model")  # fmt: skip


def _scored_videos(path: Path) -> tuple[list[Video], str]:
    """The videos an evaluation scored (``video_scores.jsonl``), with their predictions."""
    if not path.is_file():
        return [], f"{path} is missing"
    videos = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            videos.append(Video(str(row["video"]), str(row["label"]), str(row["predicted"])))
        except (ValueError, KeyError, TypeError):  # a torn or foreign line: that video only
            continue
    return videos, "" if videos else f"{path} lists no video"


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "n/a"


def _img(caption: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def per_class(confusion: list[list[int]], classes: list[str]) -> list[tuple[str, int, float]]:
    """(class, videos, accuracy) for classes with videos, worst first (ties by name)."""
    out = [(classes[i], sum(row), row[i] / sum(row)) for i, row in enumerate(confusion) if sum(row)]
    return sorted(out, key=lambda r: (r[2], r[0]))


def confused_pairs(
    confusion: list[list[int]], classes: list[str]
) -> list[tuple[str, str, int, float]]:
    """(true, predicted, videos, share of the true class) off the diagonal, most first."""
    pairs = [
        (classes[i], classes[j], v, v / sum(row))
        for i, row in enumerate(confusion)
        for j, v in enumerate(row)
        if i != j and v > 0
    ]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:PAIRS_SHOWN]


def _confusion_table(confusion: list[list[int]], classes: list[str]) -> str:
    e = html.escape
    head = "".join(f'<th class="rot"><span>{e(c)}</span></th>' for c in classes)
    body = []
    for i, row in enumerate(confusion):
        total = sum(row) or 1
        cells = "".join(
            f'<td style="background:rgba(31,119,180,{v / total:.3f})" title="{e(classes[i])} '
            f'&rarr; {e(classes[j])}: {v}">{v}</td>'
            for j, v in enumerate(row)
        )
        body.append(f"<tr><th>{e(classes[i])}</th>{cells}</tr>")
    return (f'<table class="confusion"><tr><th>true \\ predicted</th>{head}</tr>'
            + "".join(body) + "</table>")  # fmt: skip


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:right}th{text-align:left}figure{margin:1em 0}img{max-width:100%}
pre{background:#f4f4f4;padding:1em;overflow-x:auto;white-space:pre-wrap}
.confusion td{min-width:2em;text-align:center}.rot{vertical-align:bottom}
.rot span{writing-mode:vertical-rl;transform:rotate(180deg)}
.pair{display:flex;gap:1em;align-items:flex-start}.pair figure{margin:0 0 1em 0;max-width:45%}
figcaption{font-size:90%;overflow-wrap:anywhere}
.missing{border:1px dashed #c33;color:#a22;padding:1em;min-width:10em}"""


def _table(header: list[str] | None, rows: list[list[str]]) -> str:
    """A table of already-escaped cells; the first cell of each row is a header cell."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        f"<tr><th>{row[0]}</th>" + "".join(f"<td>{c}</td>" for c in row[1:]) + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _picture(p: Picture) -> str:
    """An embedded JPEG with its caption, or the caption and why the picture is missing."""
    e = html.escape
    if p.jpeg is None:
        return (f'<figure class="missing"><p>{e(p.missing)}</p>'
                f"<figcaption>{e(p.caption)}</figcaption></figure>")  # fmt: skip
    data = base64.b64encode(p.jpeg).decode("ascii")
    return (f'<figure><img alt="{e(p.caption)}" src="data:image/jpeg;base64,{data}">'
            f"<figcaption>{e(p.caption)}</figcaption></figure>")  # fmt: skip


def _section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def pictures(source: ReportSource) -> Pictures:
    """A sample frame of a video of each class of the most confused pairs (a video of the true
    class that was predicted as the other one, when the folder says which), and the attention of
    up to ``SHEET_CLIPS`` validation clips of different classes, the worst classes first."""
    if source.confusion is None or not source.classes:
        return Pictures([], [], "the folder records no confusion matrix")
    frames: dict[str, Picture] = {}  # by path: each video decoded once

    def frame(video: Video | None, name: str, caption: str) -> Picture:
        if video is None:
            why = source.videos_note or "the folder records none"
            return Picture(caption, missing=f"no validation video of {name}: {why}")
        caption = f"{caption}: {video.path}"
        if video.path not in frames:
            frames[video.path] = sample_frame(video, caption, source.reading)
        return replace(frames[video.path], caption=caption)

    pairs = []
    for true, predicted, _, _ in confused_pairs(source.confusion, source.classes):
        wrong = _first(source.videos, true, predicted)
        seen = wrong is not None and wrong.predicted == predicted  # the confusion itself
        left = frame(wrong, true, f"{true}, predicted as {predicted}" if seen else true)
        right = frame(_first(source.videos, predicted, predicted), predicted, predicted)
        pairs.append((left, right))
    note, attention = "", []
    if source.model is None:
        note = source.model_note
    elif not source.videos:
        note = source.videos_note or "the folder records no validation video"
    else:
        try:
            runner = load_attention_runner(*source.model)
        except FAILURES as exc:
            note = f"the model {source.model[0]} could not be loaded: {' '.join(str(exc).split())}"
        else:
            worst = [c for c, _, _ in per_class(source.confusion, source.classes)]
            chosen = sheet_videos(source.videos, worst + source.classes)
            attention = [attention_clip(runner, v, source.reading) for v in chosen]
    return Pictures(pairs, attention, note)


def _first(videos: list[Video], label: str, predicted: str) -> Video | None:
    """A video of ``label``, one predicted as ``predicted`` first."""
    of_label = [v for v in videos if v.label == label]
    return next(
        (v for v in of_label if v.predicted == predicted), of_label[0] if of_label else None
    )


def render(source: ReportSource, pics: Pictures | None = None) -> str:
    """The page for ``source`` (with ``pics``: the sample frames and the attention sheet)."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{e(source.title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{e(source.title)}</h1>",
        '<section id="figures">'
        + _table(None, [[e(k), e(v)] for k, v in source.figures])
        + "</section>",
    ]
    for caption, path in source.images:
        stem = path.stem.replace("_", "-")  # curves, lr-find, confusion-plot (beside the table)
        name = "confusion-plot" if stem == "confusion" else stem
        parts.append(_section(name, caption, _img(caption, path)))
    if source.confusion is not None and source.classes:
        matrix, classes = source.confusion, source.classes
        parts.append(_section("confusion", "Confusion matrix", _confusion_table(matrix, classes)))
        worst = [[e(c), str(n), f"{100 * a:.1f}%"] for c, n, a in per_class(matrix, classes)]
        parts.append(_section("per-class", "Per-class accuracy, worst first",
                              _table(["class", "videos", "top-1"], worst)))  # fmt: skip
        pairs = confused_pairs(matrix, classes)
        rows = [[e(t), e(p), str(n), f"{100 * share:.1f}%"] for t, p, n, share in pairs]
        header = ["true", "predicted as", "videos", "share of the class"]
        body = _table(header, rows) if rows else "<p>None.</p>"
        if pics is not None and pics.pairs:
            body += "<h3>A sample frame of each class</h3>"
            for (t, p, n, _), (left, right) in zip(pairs, pics.pairs, strict=True):
                body += (f"<h4>{e(t)} &rarr; {e(p)} ({n} video{'s' if n != 1 else ''})</h4>"
                         f'<div class="pair">{_picture(left)}{_picture(right)}</div>')  # fmt: skip
        parts.append(_section("pairs", "Most confused pairs", body))
    if pics is not None:
        body = "".join(_picture(p) for p in pics.attention)
        if not pics.attention:
            body = f'<p class="missing">No attention sheet: {e(pics.attention_note)}.</p>'
        else:
            body = ("<p>The fused attention mass of each segment over the model's crop (the "
                    "colours compare across one clip), the model's top-3 and each segment's "
                    "share of the attention along the bottom.</p>" + body)  # fmt: skip
        parts.append(_section("attention", "Attention of a few validation clips", body))
    command = "<pre>" + e(source.command or "(not recorded)") + "</pre>"
    parts.append(_section("command", "Command", command))
    settings = "<pre>" + e(json.dumps(source.settings, indent=2)) + "</pre>"
    parts.append(_section("settings", "Settings", settings))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Writes the report of a run or evaluation folder (default: FOLDER/report.html)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ISpanError(f"{folder} is not a folder; give a training run or an evaluate --output")
    path = Path(output) if output is not None else folder / REPORT_HTML
    source = _source(folder)
    atomic_write_text(path, render(source, pictures(source)))
    return path
