"""``ispan classify``: top actions of videos, folders, globs or a list on stdin."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.options import (
    BatchSizeOpt,
    Crops,
    CropsOpt,
    Decoder,
    DecoderOpt,
    DeviceOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    Runtime,
    RuntimeOpt,
    SegmentsOpt,
    StreamOpt,
)
from ispan_cli.hub import DEFAULT_TIMEOUT  # light: imports neither torch nor huggingface_hub
from ispan_cli.limits import MAX_WORKERS, VIDEO_TIMEOUT

LIVE_WINDOW = 2.0  # --window for live sources (and --save-video) when none is given


class RecordFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def classify(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders (searched recursively), glob patterns, list files "
            "(list.txt, list.lst, or @FILE for any name: one input a line), or - to read "
            "inputs from standard input, one per line. Lists stream: a million lines cost no "
            "memory. Also URLs (http, https, ftp), live streams (rtsp, rtmp, udp, HLS .m3u8) "
            "and cameras (webcam:0, /dev/video0): a live source runs as a rolling timeline "
            "(--window, default 2 s); --timeout also bounds how long a source may stay silent.",
            show_default=False,
        ),
    ],
    model: ModelOpt = None,
    topk: Annotated[int, typer.Option("--topk", "-k", min=1, help="Classes per video.")] = 5,
    segments: SegmentsOpt = None,
    crops: CropsOpt = Crops.one,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    runtime: RuntimeOpt = Runtime.torch,
    batch_size: BatchSizeOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            max=MAX_WORKERS,
            help="Background decoding threads. Default: one per 8 usable cores on the CPU (at "
            "least 1), all but one on a GPU.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=0,
            max=MAX_WORKERS,
            help="Model threads (torch intra-op, ONNX Runtime intra-op). 0: the cores this "
            "process may use (affinity mask and cgroup CPU quota, not the machine's count).",
        ),
    ] = 0,
    decoder: DecoderOpt = Decoder.auto,
    stream: StreamOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            metavar="SECONDS",
            help="Seconds a network request may take to connect or to start answering, and "
            "an answer may go without bringing data: Hugging Face Hub downloads, video URLs, "
            "and live streams (a stream silent this long ends, or is reopened with "
            "--reconnect). A stalled server fails with an error instead of hanging. Default: "
            f"{DEFAULT_TIMEOUT:g} for the Hub, {VIDEO_TIMEOUT:g} for video sources.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        RecordFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="Output format. Default: table on a terminal, jsonl when piped, or from the "
            "--output extension.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write records to this file.")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary; errors still print.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first input that fails.")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            help="Timeline mode: classify windows of this many seconds (K frames each), one "
            "record per window, streamed.",
            show_default=False,
        ),
    ] = None,
    stride: Annotated[
        float | None,
        typer.Option(
            "--stride",
            help="Seconds between window starts (default: --window).",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Timeline mode: join adjacent windows with the same top class into segments.",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run: inputs that already have a record in --output "
            "(same model and settings, else refused with the differences) are skipped and new "
            "records appended; a torn last line is dropped. Records are flushed as whole lines "
            "and synced per batch. jsonl or csv.",
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Classify share I of N (0-based: every N-th input from the I-th) into "
            "--output's part file OUT.part-0000I-of-0000N; when all parts are complete the last "
            "to finish merges them into OUT in input order (or run `ispan merge OUT`). For SLURM "
            "array jobs: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT. Under torchrun "
            "(RANK, WORLD_SIZE) or srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS) the share comes "
            "from the environment.",
            show_default=False,
        ),
    ] = None,
    merge_wait: Annotated[
        float,
        typer.Option(
            "--merge-wait",
            min=0,
            metavar="SECONDS",
            help="Under torchrun or srun: how long rank 0 waits for the other parts to merge "
            "them (it polls the file system).",
        ),
    ] = 1800.0,
    reconnect: Annotated[
        int,
        typer.Option(
            "--reconnect",
            min=0,
            metavar="N",
            help="Live sources: reopen a stream that stalls or drops up to N times in a row, "
            "with backoff (0.5 s, 1 s, 2 s ... 8 s); each gap is reported as a record.",
        ),
    ] = 0,
    max_latency: Annotated[
        float | None,
        typer.Option(
            "--max-latency",
            min=0.0,
            metavar="SECONDS",
            help="Live sources: drop a window whose record would come more than this many "
            "seconds after its last frame (its age plus the model's recent time per window); "
            "counted in dropped_windows. 0: no bound.",
            show_default=False,
        ),
    ] = None,
    save_video: Annotated[
        Path | None,
        typer.Option(
            "--save-video",
            metavar="OUT.mp4",
            help="Timeline mode, one input: also write the video with the top-k of the window "
            "in effect drawn on every frame and a strip of the top-1 class over time (H.264 "
            "MP4, fragmented: plays in browsers, and a killed run's file still plays).",
            show_default=False,
        ),
    ] = None,
    attention: Annotated[
        bool,
        typer.Option(
            "--attention",
            help="With --save-video on a file: also draw each window's attention heatmap "
            "(istpan models, --runtime torch; one more model pass per window).",
        ),
    ] = False,
    flow_model: Annotated[
        str | None,
        typer.Option(
            "--flow-model",
            help="Two streams: also run this flow model (ispan train --modality flow), the "
            "flow computed on the fly for the frames it needs with its own method, bound and "
            "L; records give the fused top-k and each stream's (streams.rgb, streams.flow). "
            "Video files only, not --window.",
            rich_help_panel="Two streams",
            show_default=False,
        ),
    ] = None,
    fusion_weights: Annotated[
        str,
        typer.Option(
            "--fusion-weights",
            help="RGB,flow weights (TSN: 1,1.5); the fused score is the weighted mean of the "
            "streams' probabilities.",
            rich_help_panel="Two streams",
        ),
    ] = "1,1.5",
) -> None:
    """Classify the actions in videos and print the top classes with their probabilities.

    Every record names the model (and its revision or weights sha256), the settings, the frame
    indices and timestamps that were used, whether frames were repeated (videos shorter than
    --segments), and the decode, preprocess and model times. Failed inputs get a record with an
    "error" field and a line on stderr; the job carries on and exits with status 1.
    """
    from ispan_cli.errors import UsageError
    from ispan_cli.inference.inputs import is_list_input
    from ispan_cli.inference.job import OutputTarget
    from ispan_cli.inference.shards import detect_shard
    from ispan_cli.video.sources import is_live_input, set_default_timeout

    set_default_timeout(timeout)  # network video sources too, not only the Hub
    if window is None and (any(is_live_input(i) for i in inputs) or save_video is not None):
        window = LIVE_WINDOW  # a stream has no end to sample K segments of: a rolling timeline
    if save_video is not None and (
        len(inputs) != 1 or is_list_input(inputs[0]) or Path(inputs[0]).is_dir() or merge
    ):
        raise UsageError("--save-video takes one input (a file or a stream), without --merge")
    if attention and (save_video is None or is_live_input(inputs[0])):
        raise UsageError("--attention draws on --save-video's video of a file")
    if window is None and (stride is not None or merge):
        raise UsageError("--stride and --merge need --window SECONDS (timeline mode)")
    if (window is not None and window <= 0) or (stride is not None and stride <= 0):
        raise UsageError("--window and --stride must be positive numbers of seconds")
    sharding = detect_shard(shard)
    target = OutputTarget(
        output,
        _choose_format(fmt, output),
        resume,
        sharding,
        timeline=window is not None,
        live=any(is_live_input(i) for i in inputs),
    )
    outputs = contextlib.ExitStack()
    if output is not None:  # checked and locked (one writer at a time) before the model loads
        from ispan_cli.outputs import check_output_file, exclusive

        check_output_file(output, [p for p in inputs if p != "-"])
        outputs.enter_context(exclusive(target.path))
    with outputs:
        written = _classify(
            inputs, target, model, runtime, device, precision, timeout, segments, crops, topk,
            decoder, stream, batch_size, workers, fail_fast, window, stride, merge, quiet,
            live=(reconnect, max_latency, save_video, attention), threads=threads,
            flow=(flow_model, fusion_weights),
        )  # fmt: skip
    failed = written[0]
    if sharding is not None:
        failed += _finish_shard(target, written[1], merge_wait, quiet)
    raise typer.Exit(1 if failed else 0)


def _finish_shard(target, records: int, merge_wait: float, quiet: bool) -> int:
    """Marks this part complete and merges when every part is; 1 if rank 0 could not merge."""
    from rich.console import Console

    from ispan_cli.inference.job import finish_target, not_merged_error
    from ispan_cli.inference.merge import MergeResult
    from ispan_cli.terminal import markup

    err = Console(stderr=True)
    rank0 = target.shard.index == 0 and target.shard.source != "--shard"
    say = None if quiet else (lambda m: err.print(f"[dim]{markup(m)}[/dim]", highlight=False))
    result = finish_target(target, records, merge_wait if rank0 else 0.0, say)
    if isinstance(result, MergeResult):
        if not quiet:
            err.print(
                f"[dim]merged {result.parts} parts into {markup(result.output)} "
                f"({result.records} records)[/dim]",
                highlight=False,
            )
    elif result is None and rank0:
        raise not_merged_error(target)
    elif result is None and not quiet:
        err.print(
            f"[dim]{markup(target.path)} complete; the last shard to finish merges the parts "
            f"(or run `ispan merge {markup(target.output)}`)[/dim]",
            highlight=False,
        )
    return 0


def _classify(
    inputs, target, model, runtime, device, precision, timeout, segments, crops, topk, decoder,
    stream, batch_size, workers, fail_fast, window, stride, merge, quiet,
    live=(0, None, None, False), threads=0, flow=(None, "1,1.5"),
) -> tuple[int, int]:  # fmt: skip
    """Loads the model and writes the records; returns (failed, records in the file)."""
    from ispan_cli.inference.pipeline import ClassifyOptions, base_record, run_classify
    from ispan_cli.inference.resume import comparable
    from ispan_cli.inference.timeline import merge_windows
    from ispan_cli.runtime.loading import load_model, skip_demo_note
    from ispan_cli.runtime.threads import apply_torch_threads, plan_threads, prepare_threads

    if target.shard is not None:
        from ispan_cli.inference.shards import local_device

        device = local_device(device, runtime.value, target.shard)
    plan = plan_threads(False, workers=workers, threads=threads or None)
    prepare_threads(plan)  # before load_model imports torch: OpenMP reads its wait policy once
    if quiet:  # --quiet: nothing on stderr but errors, not even the demo model's note
        skip_demo_note()
    loaded = load_model(
        model, runtime.value, device, precision.value, timeout, threads=plan.model_threads
    )
    predictor = loaded.predictor()
    if loaded.flow is not None:  # its input is flow, not frames: it runs beside an RGB model
        from ispan_cli.errors import UsageError

        raise UsageError(
            f"--model {loaded.identity.id} is a flow model; classify with an RGB --model and "
            f"--flow-model {loaded.identity.id} (two streams)"
        )
    if not str(predictor.device).startswith("cpu"):
        plan = plan_threads(True, workers=workers, threads=threads or None)
    if runtime.value == "torch":
        apply_torch_threads(plan)
    options = ClassifyOptions(
        segments=segments or predictor.num_segments,
        crops=int(crops.value),
        topk=topk,
        decoder=decoder.value,
        stream=stream,
        batch_size=batch_size or (4 if window is None else 1),
        workers=plan.decode_workers,
        codec_threads=plan.codec_threads,
        fail_fast=fail_fast,
    )
    settings = options.settings()
    streams = None
    if flow[0] is not None:  # two streams (issue 16): inference/two_stream.py
        from ispan_cli.inference.two_stream import load_two_stream

        streams = load_two_stream(
            predictor, flow[0], flow[1], window, runtime.value, device, precision.value, timeout
        )
        settings = {**settings, **streams.settings()}
    if window is not None:
        settings = {**settings, "window": window, "stride": stride or window}
        settings = {**settings, "merge": True} if merge else settings
    expected = comparable(base_record(predictor, "", settings))

    def records_for(items):
        if streams is not None:
            from ispan_cli.inference.two_stream import run_two_stream

            return run_two_stream(predictor, streams, items, options)
        if window is None:
            return run_classify(predictor, items, options)
        from ispan_cli.inference.live import LiveOptions, timeline_records

        reconnect, max_latency, save_video, attention = live
        live_options = LiveOptions(window, stride or window, reconnect, max_latency, timeout)
        decorate = None
        if attention:
            from ispan_cli.viz.window_heat import WindowHeat

            decorate = WindowHeat(predictor, inputs[0])
        records = timeline_records(predictor, items, options, live_options, save_video, decorate)
        return merge_windows(records) if merge else records

    return _write_records(
        inputs, records_for, target, expected, quiet, predictor, options, window is None
    )


def _choose_format(fmt: RecordFormat | None, output: Path | None) -> str:
    if fmt is not None:
        return fmt.value
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        return suffix if suffix in ("json", "jsonl", "csv") else "jsonl"
    return "table" if sys.stdout.isatty() else "jsonl"


def _write_records(inputs, records_for, target, expected, quiet, predictor, options, counted):
    """Writes every record; returns (failed inputs, records now in the output file)."""
    from rich.console import Console

    from ispan_cli.inference.inputs import expand_inputs, is_list_input
    from ispan_cli.inference.job import Counter, open_target, pending_items
    from ispan_cli.terminal import markup, visible

    err = Console(stderr=True)
    if not quiet:
        shard = f", {target.shard}" if target.shard else ""
        err.print(
            f"[dim]model {markup(predictor.identity.id)} ({predictor.identity.source}) on "
            f"{predictor.device}, {predictor.runtime} {getattr(predictor, 'precision', '')}, "
            f"{options.segments} segments x {options.crops} crop(s){shard}[/dim]",
            highlight=False,
        )
    with open_target(target, expected, options.batch_size) as opened:
        state = opened.state
        if state.dropped_bytes:
            err.print(
                f"note: --resume dropped {visible(state.dropped_note)} from {visible(target.path)}"
                ", left by an interrupted run",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        seen, skipped = Counter(), [0]
        items = pending_items(
            seen.through(expand_inputs(inputs, stdin=sys.stdin)), target.shard, state.done,
            skipped, resume=target.resume,
        )  # fmt: skip
        total = None
        if counted and not any(is_list_input(i) for i in inputs):
            items = list(items)  # a few names on the command line: the progress bar knows them
            total = len(items)
        failed, count = _stream_records(
            records_for(items), opened.writer, target.output, err, quiet, total
        )
        if seen.count == 0:  # inside the block: an empty run never replaces an earlier output
            from ispan_cli.errors import ISpanError

            raise ISpanError(
                "nothing to classify: the inputs (standard input, list files, folders, glob "
                "patterns) gave no video paths; check them"
            )
    if not quiet:
        done = f", {skipped[0]} already in {visible(target.path)}" if target.resume else ""
        err.print(
            f"[dim]{count - failed} of {count} input(s) classified, {failed} failed"
            f"{markup(done)}[/dim]",
            highlight=False,
        )
    return failed, state.records + count


def _stream_records(records, writer, output, err, quiet, total):
    """Writes the records as they come; returns (failed, written)."""
    from rich.console import Console

    from ispan_cli.terminal import one_line

    failed = 0
    with _progress(err, quiet) as progress:
        task = progress.add_task("classifying", total=total)
        for record in records:
            writer.write(record)
            if record.get("error"):
                failed += 1
                message = record["error"]
                if record["input"] not in message:
                    message = f"{record['input']}: {message}"
                if progress.live.is_started:
                    progress.console.print(
                        f"error: {one_line(message)}", highlight=False, markup=False, soft_wrap=True
                    )
                else:  # no bar to keep clear of: a plain write (rich costs ~1 ms a line)
                    sys.stderr.write(f"error: {one_line(message)}\n")
            progress.advance(task)
    writer.close(Console() if not output else Console(file=writer.stream))
    return failed, writer.count


def _progress(console, quiet: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )
