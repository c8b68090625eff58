"""``ispan fuse A/video_scores.jsonl B/video_scores.jsonl --weights 1 1.5``: late fusion of
saved per-video scores (RGB and flow streams), with each stream's and the fused metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import FormatOpt, OutputFormat
from ispan_cli.errors import UsageError


def fuse(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Two or more video_scores.jsonl files (or the folders holding them) that `ispan "
            "evaluate --output DIR` wrote, one per stream, over the same test videos.",
            show_default=False,
        ),
    ],
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            help="One weight per file, in file order: --weights 1 1.5 (or 1,1.5). TSN's RGB + "
            "flow fusion is 1 1.5. Default: equal weights.",
            show_default=False,
        ),
    ] = None,
    softmax: Annotated[
        bool,
        typer.Option(
            "--softmax/--logits",
            help="Sum each stream's softmax probabilities (MMAction2's --apply-softmax) instead "
            "of the raw logits (TSN's eval_scores.py).",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write the fused video_scores.jsonl and metrics.json into.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Fuse saved per-video class scores as sum(weight * scores) and report video top-1,
    top-5 and mean class accuracy of each stream and of the fusion.

    Every file must score the same videos (matched by path, or by <class>/<video> when only the
    roots differ) with the same labels; anything else is an error naming the first difference.
    """
    from ispan_cli.engine.fusion import check_output, fuse_files, write_fused

    files, values = _split_weights(files, weights)
    if output is not None:
        check_output(output, files)
    report = fuse_files(files, values, softmax)
    if output is not None:
        write_fused(report, output)
    emit(report, fmt, _render)


def _split_weights(files: list[str], weights: str | None) -> tuple[list[str], list[float] | None]:
    """``--weights 1 1.5``: the option takes one value, so the further numbers arrive after the
    files; they are taken back when they are numbers and not files on disk."""
    if weights is None:
        return files, None
    values = weights.replace(",", " ").split()
    given = len(values)
    while files and _number(files[-1]) and not Path(files[-1]).exists():
        values.insert(given, files.pop())  # popped last first: each goes before the later ones
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise UsageError(f"--weights {weights!r}: give numbers, e.g. --weights 1 1.5") from None
    if any(not math.isfinite(v) for v in numbers):
        raise UsageError("--weights must be finite numbers")
    return files, numbers


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _render(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import text

    d = report.to_dict()
    table = Table(title=text(f"late fusion of {d['videos']} videos, {d['classes']} classes, "
                             f"weighted sum of {d['scores']}"))  # fmt: skip
    for col, justify in (("stream", "left"), ("weight", "right"), ("top-1", "right"),
                         ("top-5", "right"), ("mean class acc.", "right")):  # fmt: skip
        table.add_column(col, justify=justify)
    for s in d["streams"]:
        table.add_row(text(s["file"]), f"{s['weight']:g}", *_pcts(s))
    table.add_row("fused", "", *_pcts(d["fused"]), style="bold")
    Console().print(table)


def _pcts(m: dict) -> list[str]:
    return [f"{100 * m[k]:.2f}%" for k in ("top1", "top5", "mean_class_accuracy")]
