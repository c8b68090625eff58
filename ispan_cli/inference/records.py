"""The output records of ``ispan classify`` and their writers (table, json, jsonl, csv).

Schema (one record per video, or per window in timeline mode; documented in README.md):
``input``, ``model`` {id, revision, sha256, source}, ``runtime``, ``device``, ``precision``,
``settings`` {segments, crops, topk, decoder, stream; window, stride (timeline mode); merge
(with ``--merge``)}: what ``--resume`` compares, ``topk`` [{rank, index, label, score}] sorted
by score, ``frames`` {segments, crops, indices, timestamps, repeated}, ``timings_ms`` {decode,
preprocess, model}, ``window`` {index, start, end} (timeline mode only), ``error`` (null, or why
this input failed; then topk is empty and frames and timings are null). With ``--merge``:
``segment`` {start, end, windows}, ``label``, ``index``, ``score`` (mean top-1 probability over
the joined windows) instead of topk/frames/timings. CSV: one row per record, the settings (with
runtime and precision) as one JSON cell.
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any, TextIO

FORMATS = ("table", "json", "jsonl", "csv")
CSV_COLUMNS = (
    "input", "window_start", "window_end", "top1_label", "top1_score", "topk",
    "frame_indices", "timestamps", "repeated", "decode_ms", "preprocess_ms", "model_ms",
    "model_id", "model_revision", "model_sha256", "error", "settings",
)  # fmt: skip
SYNC_SECONDS = 0.25  # the most often an output file is synced to disk


class RecordWriter:
    """Writes records as they come; ``close`` finishes the document (JSON array, table).

    Every record is flushed as whole lines when written (a killed process leaves complete
    records, at most a torn last line). ``durable``: also synced to disk after each ``batch``
    records, at most every SYNC_SECONDS, and at close, so a machine that loses power loses at most
    the batch in flight. ``header``: False when appending to a CSV file that has one.
    """

    def __init__(
        self,
        fmt: str,
        stream: TextIO,
        *,
        durable: bool = False,
        batch: int = 1,
        header: bool = True,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(fmt)
        self.fmt = fmt
        self.stream = stream
        self.count = 0
        self.durable = durable
        self._batch = max(batch, 1)
        self._unsynced = 0
        self._synced_at = time.monotonic()
        self._header = header
        self._rows: list[dict[str, Any]] = []
        self._csv = (
            csv.DictWriter(stream, CSV_COLUMNS, lineterminator="\n") if fmt == "csv" else None
        )

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record) + "\n")
        elif self.fmt == "json":
            self.stream.write(("[\n" if self.count == 0 else ",\n") + json.dumps(record))
        elif self.fmt == "csv":
            if self.count == 0 and self._header:
                self._csv.writeheader()
            self._csv.writerow(csv_row(record))
        else:
            self._rows.append(record)
        self.count += 1
        self.stream.flush()  # a consumer of a pipe sees each record as soon as it exists
        if self.durable:
            self._unsynced += 1
            now = time.monotonic()
            if self._unsynced >= self._batch and now - self._synced_at >= SYNC_SECONDS:
                self.sync()

    def sync(self) -> None:
        """Flushes and syncs what was written to disk."""
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def close(self, console=None) -> None:
        if self.fmt == "json":
            self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        elif self.fmt == "table":
            render_table(self._rows, console)
        self.stream.flush()
        if self.durable and self._unsynced:
            self.sync()


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    frames = record.get("frames") or {}
    timings = record.get("timings_ms") or {}
    window = record.get("window") or record.get("segment") or {}
    model = record.get("model") or {}
    topk = record.get("topk") or []
    top1 = topk[0] if topk else {"label": record.get("label"), "score": record.get("score")}
    return {
        "input": record["input"],
        "window_start": window.get("start"),
        "window_end": window.get("end"),
        "top1_label": top1.get("label"),
        "top1_score": _round(top1.get("score")),
        "topk": ";".join(f"{t['label']}={t['score']:.6f}" for t in topk),
        "frame_indices": " ".join(map(str, frames.get("indices", []))),
        "timestamps": " ".join(f"{t:.6f}" for t in frames.get("timestamps", [])),
        "repeated": frames.get("repeated"),
        "decode_ms": _round(timings.get("decode")),
        "preprocess_ms": _round(timings.get("preprocess")),
        "model_ms": _round(timings.get("model")),
        "model_id": model.get("id"),
        "model_revision": model.get("revision"),
        "model_sha256": model.get("sha256"),
        "error": record.get("error"),
        "settings": settings_text(_csv_settings(record)),
    }


def _csv_settings(record: dict[str, Any]) -> dict | None:
    # a CSV row has no runtime or precision column: the settings cell carries them
    if record.get("settings") is None:
        return None
    return {
        **record["settings"],
        "runtime": record.get("runtime"),
        "precision": record.get("precision"),
    }


def settings_text(settings: dict | None) -> str | None:
    """The settings as one compact JSON string (a CSV cell; compared on --resume)."""
    return None if settings is None else json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def render_table(rows: list[dict[str, Any]], console=None) -> None:
    """A rich table for people: one row per record, errors in red."""
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import markup, text

    console = console or Console()
    if not rows:
        console.print("No videos classified.")
        return
    timeline = any("window" in r or "segment" in r for r in rows)
    model = rows[0].get("model") or {}
    title = f"model {model.get('id')}" + (
        f"@{model['revision'][:12]}" if model.get("revision") else ""
    )
    table = Table(title=text(title), show_lines=not timeline)
    table.add_column("input", overflow="fold")
    if timeline:
        table.add_column("time (s)", justify="right", no_wrap=True)
    table.add_column("top classes", overflow="fold")
    table.add_column("frames", justify="right")
    table.add_column("ms", justify="right")
    for r in rows:
        span = r.get("window") or r.get("segment")
        when = (
            [f"{span['start']:.2f}-{span['end']:.2f}"]
            if timeline and span
            else ([""] if timeline else [])
        )
        if r.get("error"):
            error = f"[red]error: {markup(r['error'])}[/red]"
            table.add_row(text(r["input"]), *when, error, "", "")
            continue
        if "gap" in r:  # a live source that dropped and was reopened
            gap = r["gap"]
            note = f"[yellow]no frames for {gap['seconds']:.1f} s, reconnected[/yellow]"
            table.add_row(text(r["input"]), *when, note, "", "")
            continue
        if "segment" in r:
            classes = f"{markup(r['label'])} {r['score']:.3f}"
            table.add_row(text(r["input"]), *when, classes, f"{r['segment']['windows']} win", "")
            continue
        classes = "\n".join(f"{markup(t['label'])} [dim]{t['score']:.3f}[/dim]" for t in r["topk"])
        frames = r["frames"]
        note = f"{frames['segments']}x{frames['crops']}" + (
            " (repeated)" if frames["repeated"] else ""
        )
        total = sum(v for v in r["timings_ms"].values() if v is not None)
        table.add_row(text(r["input"]), *when, classes, note, f"{total:.0f}")
    console.print(table)
