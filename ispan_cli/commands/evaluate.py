"""``ispan evaluate``: protocol metrics of a model on a dataset's test split(s)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Crops,
    CropsOpt,
    Decoder,
    DecoderOpt,
    DeviceOpt,
    FormatOpt,
    ModelOpt,
    OutputFormat,
    SegmentsOpt,
    TimeoutOpt,
)
from ispan_cli.commands.train import DatasetName
from ispan_cli.engine.evaluate_options import EvaluateOptions
from ispan_cli.errors import UsageError
from ispan_cli.limits import MAX_BATCH, MAX_WORKERS
from ispan_cli.outputs import command_line

if TYPE_CHECKING:
    from ispan_cli.engine.evaluation import EvalReport

SHOWN_SKIPS = 5  # skipped videos named on the terminal

# classify's --batch-size and --workers help speaks of its timeline mode and decoding threads;
# evaluate has no timeline, and its workers are data-loader processes
EvalBatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        min=1,
        max=MAX_BATCH,
        help=f"Videos per model call. Default: {EvaluateOptions.batch_size}.",
        show_default=False,
    ),
]
EvalWorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        "-w",
        min=0,
        max=MAX_WORKERS,
        help="Data-loader processes that check, then decode the test videos; 0 decodes in this "
        "process.",
    ),
]


def evaluate(
    dataset: Annotated[DatasetName, typer.Option("--dataset", help="Dataset to evaluate on.")],
    model: ModelOpt = None,
    data_root: Annotated[
        str | None, typer.Option("--data-root", help="Folder holding the dataset.")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="1, 2, 3 or all (mean and std over the three).")
    ] = "1",
    segments: SegmentsOpt = None,
    crops: CropsOpt = Crops.one,
    batch_size: EvalBatchSizeOpt = None,
    device: DeviceOpt = EvaluateOptions.device,
    workers: EvalWorkersOpt = EvaluateOptions.workers,
    decoder: DecoderOpt = Decoder.auto,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder for metrics.json, per_class.csv, confusion.csv/.png, video_scores.jsonl.",
        ),
    ] = None,
    output_format: FormatOpt = OutputFormat.table,
    synthetic_val: Annotated[
        int, typer.Option("--synthetic-val", help="Synthetic test clips.", min=1)
    ] = EvaluateOptions.synthetic_sizes[1],
    max_skipped: Annotated[
        float,
        typer.Option(
            "--max-skipped",
            help="Stop before scoring when more than this fraction of a split's listed test "
            "videos are missing or cannot be decoded (each is checked first, in --workers "
            "processes; cached in --output).",
        ),
    ] = EvaluateOptions.max_skipped,
    timeout: TimeoutOpt = None,
    flow_model: Annotated[
        str | None,
        typer.Option(
            "--flow-model",
            help="Two streams: this flow model (ispan train --modality flow, or an imported "
            "MMAction2 flow checkpoint) is scored on the same videos as --model (the RGB "
            "stream); each stream's and the fused metrics are reported. Needs --flow-root.",
            rich_help_panel="Two streams",
        ),
    ] = None,
    flow_root: Annotated[
        str | None,
        typer.Option(
            "--flow-root",
            help="The flow `ispan flow extract` wrote for the dataset's videos (either layout); "
            "flow made another way than the flow model was trained on is refused.",
            rich_help_panel="Two streams",
        ),
    ] = None,
    fusion_weights: Annotated[
        str,
        typer.Option(
            "--fusion-weights",
            help="RGB,flow weights of the late fusion (TSN: 1,1.5): fused = w_rgb * rgb + "
            "w_flow * flow, on the logits.",
            rich_help_panel="Two streams",
        ),
    ] = "1,1.5",
    fusion_softmax: Annotated[
        bool,
        typer.Option(
            "--fusion-softmax",
            help="Fuse each stream's probabilities (softmax) instead of its logits.",
            rich_help_panel="Two streams",
        ),
    ] = False,
) -> None:
    """Video-level top-1/top-5 and mean class accuracy on the test videos of a split.

    Every listed test video is checked first (the K frames evaluation reads are decoded); the
    ones that cannot be used are skipped and summarised by reason, within --max-skipped.

    Two streams (RGB and flow): --model RGB --flow-model FLOW --flow-root DIR
    scores both on the same videos and fuses them (--fusion-weights 1,1.5);
    or fuse saved scores: ispan evaluate fuse A.jsonl B.jsonl --weights 1 1.5.
    """
    from rich.console import Console
    from rich.progress import Progress

    from ispan_cli.engine.evaluation import evaluate as run

    if split == "all":
        splits = (1, 2, 3)
    elif split in ("1", "2", "3"):
        splits = (int(split),)
    else:
        raise UsageError(f"--split {split!r}: use 1, 2, 3 or all")
    options = EvaluateOptions(
        dataset=dataset.value,
        model=model,
        data_root=data_root,
        splits=splits,
        segments=segments,
        crops=int(crops.value),
        batch_size=batch_size or EvaluateOptions.batch_size,
        device=device,
        workers=workers,
        decoder=decoder.value,
        output=output,
        synthetic_sizes=(1, synthetic_val),
        max_skipped=max_skipped,
        timeout=timeout,
        flow_model=flow_model,
        flow_root=flow_root,
        fusion_weights=_weights(fusion_weights),
        fusion_softmax=fusion_softmax,
        command=command_line(),
    )
    err = Console(stderr=True)
    with Progress(console=err, transient=True) as bar:
        tasks: dict[tuple[str, int], int] = {}

        def bar_for(stage: str):
            def update(s: int, done: int, total: int) -> None:
                if (stage, s) not in tasks:
                    tasks[stage, s] = bar.add_task(f"split {s}: {stage}", total=total)
                bar.update(tasks[stage, s], completed=done)

            return update

        report = run(options, bar_for("scoring"), bar_for("checking videos"))
    from ispan_cli.terminal import one_line

    for s in report.splits:
        shown = s.skipped.skipped[:SHOWN_SKIPS]
        for skip in shown:
            err.print(f"skipped {one_line(skip.describe())}", highlight=False, markup=False)
        if dataset != DatasetName.synthetic:
            line = f"split {s.split}: {s.skipped.describe()}"
            if len(s.skipped.skipped) > len(shown):
                line += " (every one is in skipped.txt with --output)"
            err.print(one_line(line), highlight=False, markup=False)
    emit(report, output_format, _table)


def _weights(text: str) -> tuple[float, ...]:
    """``1,1.5`` (or ``1 1.5``) -> (1.0, 1.5)."""
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(
            f"--fusion-weights {text!r}: give two numbers, RGB then flow, e.g. 1,1.5"
        ) from None


def _table(report: EvalReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import text

    summary = report.to_dict()
    table = Table(title=text(f"{summary['model']} on {summary['dataset']}: {summary['views']}"))
    for col in ("split", "videos", "top-1", "top-5", "mean class acc.", "skipped"):
        table.add_column(col, justify="right")
    for split, m in summary["splits"].items():
        rows = [(split if not report.streams else f"{split} fused", m)]
        rows += [(f"{split} {kind}", s) for kind, s in m.get("streams", {}).items()]
        for name, r in rows:
            table.add_row(
                name,
                str(r["videos"]),
                _pct(r["top1"]),
                _pct(r["top5"]),
                _pct(r["mean_class_accuracy"]),
                str(m["skipped"]),
            )
    if "top1" in summary:
        agg = [summary[k] for k in ("top1", "top5", "mean_class_accuracy")]
        table.add_row(
            "mean ± std", "", *(f"{_pct(a['mean'])} ± {100 * a['std']:.2f}" for a in agg), ""
        )
    Console().print(table)


def _pct(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"
