"""``ispan benchmark``: videos/s per stage and runtime, side by side, measured on this machine."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Decoder,
    DecoderOpt,
    DeviceOpt,
    FormatOpt,
    OutputFormat,
    Precision,
    PrecisionOpt,
    SegmentsOpt,
    TimeoutOpt,
)
from ispan_cli.limits import MAX_BATCH, MAX_WORKERS


class BenchRuntime(str, Enum):
    torch = "torch"
    onnx = "onnx"
    all = "all"


def benchmark(
    videos: Annotated[
        list[Path] | None,
        typer.Argument(help="Videos to measure on. Default: generated clips.", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A model folder, zoo name, Hub repo, .onnx file, or a registry architecture "
            "(istpan_resnet50: random weights, for speed only). Default: the bundled model.",
        ),
    ] = None,
    runtime: Annotated[
        BenchRuntime,
        typer.Option("--runtime", case_sensitive=False, help="Runtimes to measure."),
    ] = BenchRuntime.all,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Also measure an int8 ONNX copy (static quantization)."),
    ] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    segments: SegmentsOpt = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, max=MAX_BATCH, help="Videos per call.")
    ] = 1,
    count: Annotated[
        int, typer.Option("--count", min=1, help="Generated videos (without VIDEOS).")
    ] = 8,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.2, help="Length of generated videos.")
    ] = 4.0,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            min=1,
            max=100,
            help="Rounds of timing: in each, every runtime in turn runs the model alone over "
            "the clips, then classify end to end over the videos; speeds are the medians, and "
            "'end to end / model' the median of the rounds' ratios.",
        ),
    ] = 3,
    visualize: Annotated[
        bool,
        typer.Option("--visualize", help="Also time `visualize` against `classify` (torch)."),
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=0,
            max=MAX_WORKERS,
            help="Intra-op threads for torch and ONNX Runtime. 0: as `ispan classify` plans "
            "them, from the cores this process may use (affinity mask, cgroup quota).",
        ),
    ] = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            max=MAX_WORKERS,
            help="Decode workers end to end. Default: as `ispan classify` plans them.",
            show_default=False,
        ),
    ] = None,
    decoder: DecoderOpt = Decoder.auto,
    timeout: TimeoutOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Measure decode, preprocess, model and end-to-end videos/s and peak memory per runtime.

    All runtimes run in one process on the same videos and are shown side by side; this is
    what backs every speed figure in the README and BENCHMARKS.md.
    """
    from rich.console import Console

    from ispan_cli.bench.run import BenchmarkOptions, run_benchmark
    from ispan_cli.hub import hub_timeout

    runtimes = ("torch", "onnx") if runtime == BenchRuntime.all else (runtime.value,)
    if model and model.lower().endswith(".onnx") and runtime == BenchRuntime.all:
        runtimes = ("onnx",)
    if int8:
        runtimes = (*runtimes, "onnx-int8")
    options = BenchmarkOptions(
        model=model,
        runtimes=runtimes,
        device=device,
        precision=precision.value,
        videos=tuple(videos or ()),
        count=count,
        seconds=seconds,
        segments=segments,
        batch_size=batch_size,
        decoder=decoder.value,
        visualize=visualize,
        rounds=rounds,
        threads=threads,
        workers=workers,
    )
    err = Console(stderr=True)
    with hub_timeout(timeout):
        result = run_benchmark(
            options, progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False)
        )
    emit(result, fmt, lambda r: _render(Console(), r))


def _render(console, result) -> None:
    from rich.table import Table

    v = result.videos
    what = (
        f"{v['count']} generated {v['size']} {v['codec']} videos of {v['seconds']:g} s"
        if v["source"] == "generated"
        else f"{v['count']} given videos"
    )
    m = result.machine
    from ispan_cli.terminal import markup

    console.print(
        f"{markup(result.model['id'])} ({result.model['source']}), K={result.segments}, "
        f"{result.input_size}px, batch {result.batch_size}, on {what}; {m['cpu_count']} CPU "
        f"cores, torch {m['torch']} ({m['torch_threads']} threads), onnxruntime "
        f"{m['onnxruntime']}; thread plan: {m['thread_plan']['model_threads']} model thread(s), "
        f"{m['thread_plan']['decode_workers']} decode worker(s) of {m['thread_plan']['cores']} "
        f"usable core(s) ({m['thread_plan']['source']})",
        highlight=False,
    )
    runs = result.runtimes
    table = Table("", *(r.runtime for r in runs))
    torch_run = next((r for r in runs if r.runtime == "torch"), None)
    onnx_run = next((r for r in runs if r.runtime == "onnx"), None)

    def row(label, cell):
        table.add_row(label, *(cell(r) for r in runs))

    row("device", lambda r: f"{r.device} {r.note.split(';')[0]}".strip())
    row("precision", lambda r: r.precision)
    row("decode ms/video", lambda r: f"{result.decode_ms:.1f}")
    # a flow model's "preprocessing" is computing and quantising its flow
    row(
        "flow ms/video" if result.flow else "preprocess ms/video",
        lambda r: f"{result.preprocess_ms:.1f}",
    )
    row("model ms/video", lambda r: f"{r.model_ms:.1f}")
    row("model videos/s", lambda r: f"{r.model_videos_per_s:.2f}")
    row("end-to-end videos/s", lambda r: f"{r.end_to_end_videos_per_s:.2f}")
    row("end to end / model", lambda r: f"{r.end_to_end_over_model:.2f}x")
    if torch_run:
        row("model speed-up vs torch", lambda r: f"{torch_run.model_ms / r.model_ms:.2f}x")
    if onnx_run and any(r.runtime == "onnx-int8" for r in runs):
        row("model speed-up vs onnx", lambda r: f"{onnx_run.model_ms / r.model_ms:.2f}x")
    row(
        "top-1 agreement",
        lambda r: "-" if r.top1_agreement is None else f"{r.top1_agreement:.1%} vs {r.reference}",
    )
    row(
        "max |prob diff|",
        lambda r: "-" if r.max_abs_prob_diff is None else f"{r.max_abs_prob_diff:.1e}",
    )
    row("peak RSS MB", lambda r: f"{r.peak_rss_mb:.0f}")
    row("RSS added MB", lambda r: f"{r.added_rss_mb:.0f}")
    console.print(table)
    if result.visualize:
        viz = result.visualize
        console.print(
            f"visualize {viz['visualize_s'] * 1e3:.0f} ms vs classify {viz['classify_s'] * 1e3:.0f}"
            f" ms per video: {viz['overhead']:+.0%} ({viz['what']})",
            highlight=False,
        )
