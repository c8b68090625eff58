"""``ispan report``: one self-contained HTML page for a training run or an ``evaluate --output``
folder. Images are embedded as data URIs and there is no script or remote resource, so the file
opens anywhere without a network. Every string from the run (class names, paths, the command) is
escaped: it is data, never markup.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    classes = rows[0][1:]
    return classes, [[int(v) for v in row[1:]] for row in rows[1:]]


def _source(folder: Path) -> ReportSource:
    if (folder / "metrics.jsonl").is_file():
        return _train_source(folder)
    if (folder / "metrics.json").is_file():
        return _eval_source(folder)
    raise ISpanError(
        f"{folder} is neither a training run (metrics.jsonl) nor an `evaluate --output` folder "
        "(metrics.json); give one of those"
    )


def _train_source(folder: Path) -> ReportSource:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    config_path = folder / "best" / "config.json"
    doc = json.loads(config_path.read_text()) if config_path.is_file() else {}
    settings = doc.get("training", {})
    metrics = doc.get("metrics", {})
    images = [(c, folder / f) for c, f in (("Training curves", "curves.png"),
              ("Learning-rate range test", "lr_find.png")) if (folder / f).is_file()]  # fmt: skip
    read = _read_confusion(folder / RUN_CONFUSION_CSV)
    classes = list(doc.get("model", {}).get("labels") or (read[0] if read else []))
    figures = [
        ("epochs run", str(len(rows))),
        ("best epoch", str(metrics.get("epoch", "n/a"))),
        ("validation top-1", _pct(metrics.get("top1"))),
        ("validation top-5", _pct(metrics.get("top5"))),
        ("mean class accuracy", _pct(metrics.get("mean_class_accuracy"))),
        ("validation videos", str(metrics.get("videos", "n/a"))),
    ]
    return ReportSource("train", folder, f"Training run {folder.name}", settings,
                        settings.get("command", ""), images, read[1] if read else None,
                        classes, figures)  # fmt: skip


def _eval_source(folder: Path) -> ReportSource:
    doc = json.loads((folder / "metrics.json").read_text())
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
    return ReportSource("evaluate", folder, f"Evaluation {folder.name}", settings,
                        str(doc.get("command", "")), images, read[1] if read else None,
                        read[0] if read else [], figures)  # fmt: skip


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
.rot span{writing-mode:vertical-rl;transform:rotate(180deg)}"""


def _table(header: list[str] | None, rows: list[list[str]]) -> str:
    """A table of already-escaped cells; the first cell of each row is a header cell."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        f"<tr><th>{row[0]}</th>" + "".join(f"<td>{c}</td>" for c in row[1:]) + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def render(source: ReportSource) -> str:
    """The page for ``source``."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{e(source.title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{e(source.title)}</h1>",
        _table(None, [[e(k), e(v)] for k, v in source.figures]),
    ]
    for caption, path in source.images:
        parts.append(f"<h2>{e(caption)}</h2>" + _img(caption, path))
    if source.confusion is not None and source.classes:
        matrix, classes = source.confusion, source.classes
        parts.append("<h2>Confusion matrix</h2>" + _confusion_table(matrix, classes))
        worst = [[e(c), str(n), f"{100 * a:.1f}%"] for c, n, a in per_class(matrix, classes)]
        parts.append(
            "<h2>Per-class accuracy, worst first</h2>" + _table(["class", "videos", "top-1"], worst)
        )
        pairs = [
            [e(t), e(p), str(n), f"{100 * share:.1f}%"]
            for t, p, n, share in confused_pairs(matrix, classes)
        ]
        header = ["true", "predicted as", "videos", "share of the class"]
        parts.append(
            "<h2>Most confused pairs</h2>" + (_table(header, pairs) if pairs else "<p>None.</p>")
        )
    parts.append("<h2>Command</h2><pre>" + e(source.command or "(not recorded)") + "</pre>")
    parts.append("<h2>Settings</h2><pre>" + e(json.dumps(source.settings, indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Writes the report of a run or evaluation folder (default: FOLDER/report.html)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ISpanError(f"{folder} is not a folder; give a training run or an evaluate --output")
    path = Path(output) if output is not None else folder / REPORT_HTML
    atomic_write_text(path, render(_source(folder)))
    return path
