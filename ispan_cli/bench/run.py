"""``ispan benchmark``: decode, preprocess, model and end-to-end speed, and peak memory, for each
runtime side by side in one run, on the same videos.

- decode / preprocess: each video once, serially (what one video costs before the model);
- model: ``predict`` on batches of preprocessed clips, after a warm-up: a pass over every clip;
- end-to-end: the real classify pipeline (background decoding, batching) over all videos, wall
  clock, so it is what ``ispan classify`` achieves;
- model and end to end are timed in rounds (``rounds``, 3): in each, every runtime in turn makes
  a model pass and then an end-to-end pass, so the two passes a ratio compares run seconds apart
  and a change in the machine's speed hits both. A runtime's speeds are the medians over the
  rounds, and "end to end / model" the median of the rounds' ratios (each round is in the JSON);
- memory: peak RSS while that runtime loads and makes a first end-to-end pass (a warm-up, not
  timed), and what it added to the process.

A flow model (a FlowSpec in its config) is measured on its own input, the K stacks of L flows
``classify --flow-model`` computes for it (``inference.two_stream.load_flow_clip``, one flow
method made for the whole run): "decode" is decoding the frames those flows need, "preprocess"
computing, quantising and cropping the flows; end to end is the flow stream as ``classify
--flow-model`` runs it, one video after the other. Its int8 copy is calibrated on flow stacks too,
by the function ``ispan export --int8`` calibrates a flow model with.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ispan_cli.bench.memory import PeakMemory
from ispan_cli.errors import UsageError
from ispan_cli.identity import ModelIdentity

Progress = Callable[[str], None]
RUNTIMES = ("torch", "onnx", "onnx-int8")
CALIBRATION_SEED = 500  # int8's generated clips: seeds from here, apart from the benchmark's


@dataclass(frozen=True)
class BenchmarkOptions:
    model: str | None = None
    runtimes: tuple[str, ...] = ("torch", "onnx")
    device: str = "auto"
    precision: str = "fp32"  # torch only
    videos: tuple[Path, ...] = ()  # empty: generated clips
    count: int = 8
    seconds: float = 4.0
    segments: int | None = None
    batch_size: int = 1
    workers: int | None = None  # decode workers; None: the thread plan's
    decoder: str = "auto"
    calibration_clips: int = 8
    visualize: bool = False  # also time visualize against classify (torch)
    threads: int = 0  # intra-op threads for torch and onnxruntime; 0: the thread plan's
    codec_threads: int = 0  # FFmpeg threads per decode worker; set from the thread plan
    rounds: int = 3  # model-only and end-to-end passes per runtime, in turns (see above)


@dataclass
class RuntimeResult:
    runtime: str
    device: str
    precision: str
    end_to_end_videos_per_s: float
    peak_rss_mb: float
    added_rss_mb: float
    model_ms: float = 0.0  # per video, median over the rounds' model passes
    model_videos_per_s: float = 0.0
    end_to_end_over_model: float = 0.0  # the median round's end to end / model (target 0.95)
    top1_agreement: float | None = None  # with the reference runtime, on the benchmark videos
    max_abs_prob_diff: float | None = None
    reference: str | None = None
    note: str = ""
    rounds: list[dict] = field(default_factory=list)  # per round: model_s, end_to_end_s a video


@dataclass
class BenchmarkResult:
    model: dict
    videos: dict
    segments: int
    batch_size: int
    input_size: int
    decode_ms: float
    preprocess_ms: float
    machine: dict
    runtimes: list[RuntimeResult] = field(default_factory=list)
    visualize: dict | None = None
    flow: dict | None = None  # a flow model's FlowSpec: its input is flow stacks, not frames

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "videos": self.videos,
            "segments": self.segments,
            "batch_size": self.batch_size,
            "input_size": self.input_size,
            "decode_ms": float(f"{self.decode_ms:.6g}"),
            "preprocess_ms": float(f"{self.preprocess_ms:.6g}"),
            "machine": self.machine,
            "runtimes": [
                {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in vars(r).items()}
                for r in self.runtimes
            ],
            "visualize": self.visualize,
            "flow": self.flow,
        }


def _machine(device: str, plan) -> dict:
    import os

    import onnxruntime
    import torch

    return {
        "thread_plan": plan.to_dict(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device_option": device,
        "onnxruntime_threads": plan.model_threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # torch's, see the plan's spin
    }


def _check(options: BenchmarkOptions) -> None:
    unknown = [r for r in options.runtimes if r not in RUNTIMES]
    if unknown or not options.runtimes:
        raise UsageError(f"runtimes must be among {', '.join(RUNTIMES)}, got {unknown}")
    if options.count < 1 or options.batch_size < 1 or options.rounds < 1:
        raise UsageError("--count, --batch-size and --rounds must be at least 1")
    for video in options.videos:
        if not Path(video).is_file():
            raise UsageError(f"{video} is not a file")


def run_benchmark(options: BenchmarkOptions, progress: Progress | None = None) -> BenchmarkResult:
    """Measures every runtime in ``options.runtimes`` on the same videos."""
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.video.synthetic import write_synthetic_video

    say = progress or (lambda _m: None)
    _check(options)
    from ispan_cli.runtime.threads import apply_torch_threads, plan_threads

    # the same budget as `ispan classify`: model-only and end to end run under one plan
    gpu = options.device.startswith("cuda")
    plan = plan_threads(gpu, workers=options.workers, threads=options.threads or None)
    apply_torch_threads(plan)
    options = replace(
        options,
        threads=plan.model_threads,
        workers=plan.decode_workers,
        codec_threads=plan.codec_threads,
    )
    spin = plan.spin
    is_onnx_file = options.model is not None and options.model.lower().endswith(".onnx")
    if is_onnx_file and "torch" in options.runtimes:
        raise UsageError(
            "--model is an .onnx file: only --runtime onnx can run it (torch needs the model "
            "folder)"
        )
    with tempfile.TemporaryDirectory(prefix="ispan-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if options.videos:
            videos = [Path(v) for v in options.videos]
            video_info = {"source": "given", "count": len(videos)}
        else:
            say(f"generating {options.count} videos ({options.seconds:g} s, 320x240, H.264)")
            videos = [
                write_synthetic_video(tmp / f"v{i:03d}.mp4", options.seconds, seed=i)
                for i in range(options.count)
            ]
            video_info = {
                "source": "generated",
                "count": len(videos),
                "seconds": options.seconds,
                "size": "320x240",
                "fps": 25,
                "codec": "h264",
            }
        if is_onnx_file:
            loaded = load_model(options.model, "onnx", device="cpu")
            info = loaded.session.info
            # the model the file was exported from, not the file itself
            identity = ModelIdentity(info.model_id, None, info.weights_sha256, "file")
        else:  # on the CPU: exported from there; the torch runtime moves it to --device
            loaded = load_model(options.model, device="cpu", allow_registry=True)
            identity = loaded.identity
        model, doc, flow = loaded.model, loaded.document, loaded.flow
        spec = replace(loaded.preprocessing, crops=1)
        del loaded  # the probe session of an .onnx file is not one of the measured runtimes
        k = options.segments or int(doc["model"].get("num_segments", 8))
        method = None
        if flow is not None:
            from ispan_cli.flow.methods import create_method

            if options.visualize:
                raise UsageError(
                    "--visualize times classify, which runs RGB models; drop it for a flow model"
                )
            # once for the run (RAFT loads its weights); a method this machine cannot run is
            # one error before any work
            method = create_method(flow.method, "auto")
            say(f"decoding and computing {flow.method} flow of {len(videos)} videos (K={k})")
        else:
            say(f"decoding and preprocessing {len(videos)} videos (K={k})")
        clips, decode_ms, preprocess_ms = _decode(
            videos, k, spec, options.decoder, options.codec_threads, flow, method
        )
        result = BenchmarkResult(
            model={
                "id": identity.id,
                "source": identity.source,
                "arch": doc["model"].get("arch"),
                "backbone": doc["model"].get("backbone"),
            },
            videos=video_info,
            segments=k,
            batch_size=options.batch_size,
            input_size=spec.crop,
            decode_ms=decode_ms,
            preprocess_ms=preprocess_ms,
            machine=_machine(options.device, plan),
            flow=None if flow is None else flow.to_dict(),
        )
        onnx_path = Path(options.model) if is_onnx_file else None
        end_to_end = _EndToEnd(videos, k, spec, options, flow, method)
        predictors = {}
        for runtime in options.runtimes:
            say(f"loading {runtime}, classifying end to end")
            if runtime != "torch" and onnx_path is None:
                onnx_path = _export(model, doc, identity, tmp, say)
            predictors[runtime], run = _load_and_run(
                runtime, model, identity, spec, onnx_path, clips, end_to_end, tmp, say, spin
            )
            result.runtimes.append(run)
        say(f"timing the model alone and end to end, {options.rounds} rounds, runtimes in turn")
        outputs = _time_in_rounds(predictors, clips, end_to_end, result.runtimes, options)
        for run in result.runtimes:
            reference = "onnx" if run.runtime == "onnx-int8" else "torch"
            if run.runtime != reference and reference in outputs:
                ref, probs = outputs[reference], outputs[run.runtime]
                run.reference = reference
                run.top1_agreement = float((ref.argmax(-1) == probs.argmax(-1)).mean())
                run.max_abs_prob_diff = float(np.abs(ref - probs).max())
        del predictors
        if options.visualize:
            if model is None:
                raise UsageError("--visualize needs a model folder or registry name, not .onnx")
            say("timing visualize against classify")
            result.visualize = _visualize_overhead(model, identity, spec, videos, options, tmp)
    return result


def _decode(
    videos, k: int, spec, decoder: str, codec_threads: int = 0, flow=None, method=None
) -> tuple[list[np.ndarray], float, float]:
    """Each video's model input, (1, K, C, S, S), and the median decode and preprocess ms: RGB
    clips, or for a flow model (``flow``: its FlowSpec) its flow stacks, "preprocess" then being
    the flow's computation."""
    from ispan_cli.inference.two_stream import load_flow_clip
    from ispan_cli.video.clip import load_clip

    clips, dec, pre = [], [], []
    for video in videos:
        if flow is None:
            clip = load_clip(str(video), k, spec, decoder, threads=codec_threads)
            clips.append(clip.data)
            dec.append(clip.decode_ms)
            pre.append(clip.preprocess_ms)
        else:
            stacks = load_flow_clip(
                str(video), k, flow, spec.crop, spec.resize, decoder, method=method
            )
            clips.append(stacks.data)
            dec.append(stacks.decode_ms)
            pre.append(stacks.flow_ms)
    return clips, statistics.median(dec), statistics.median(pre)


def _export(model, doc, identity, tmp: Path, say) -> Path:
    from ispan_cli.export.graph import export_onnx, output_names
    from ispan_cli.runtime.onnx_format import ONNX_FILE, OnnxModelInfo
    from ispan_cli.video.sampling import SamplingSpec

    path = tmp / ONNX_FILE
    say("exporting to ONNX")
    info = OnnxModelInfo(
        config=doc,
        outputs=output_names(model, False),
        precision="fp32",
        sampling=SamplingSpec(model.config.num_segments).to_dict(),
        opset=18,
        identity=identity,
    )
    return export_onnx(model, path, info)


def _int8_file(onnx_path: Path, clips, spec, options, tmp: Path, say, flow=None) -> Path:
    """Quantizes once, calibrated on generated clips other than the benchmark's: their RGB
    clips, or a flow model's flow stacks (``flow``), made as ``ispan export --int8`` makes them."""
    from ispan_cli.export.quantize import model_inputs, quantize_int8
    from ispan_cli.video.synthetic import write_synthetic_video

    int8_path = tmp / "model.int8.onnx"
    if not int8_path.exists():
        what = "clips" if flow is None else f"clips' {flow.method} flow"
        say(f"quantizing to int8 (calibration: {options.calibration_clips} other {what})")
        cal = [
            write_synthetic_video(
                tmp / f"cal{i:03d}.mp4", options.seconds, seed=CALIBRATION_SEED + i
            )
            for i in range(options.calibration_clips)
        ]
        inputs = model_inputs(cal, clips[0].shape[1], spec, options.decoder, flow=flow)
        quantize_int8(onnx_path, int8_path, inputs.require(len(cal), "the calibration clips"))
    return int8_path


def _predictor(runtime, model, identity, spec, path, options, spin: bool = False):
    if runtime == "torch":
        from ispan_cli.runtime.device import resolve_device
        from ispan_cli.runtime.predictor import TorchPredictor

        device = resolve_device(options.device)
        return TorchPredictor(model, identity, spec, device, options.precision)
    from ispan_cli.runtime.onnx import OnnxPredictor

    return OnnxPredictor(path, device=options.device, threads=options.threads, spin=spin)


def _load_and_run(
    runtime, model, identity, spec, onnx_path, clips, end_to_end: _EndToEnd, tmp, say, spin=False
):  # fmt: skip
    """Loads one runtime and makes a first end-to-end pass (the pipeline's warm-up, untimed),
    watching memory."""
    options = end_to_end.options
    path = onnx_path
    if runtime == "onnx-int8":  # quantizing is preparation, not part of the runtime's memory
        path = _int8_file(onnx_path, clips, spec, options, tmp, say, end_to_end.flow)
    with PeakMemory() as memory:
        predictor = _predictor(runtime, model, identity, spec, path, options, spin)
        predictor.predict(clips[0][None])  # warm-up: allocations, kernel choice, TensorRT build
        _, failed = end_to_end.run(predictor)
    note = getattr(predictor, "provider", "")
    if failed:
        note = f"{note}; {len(failed)} video(s) failed: {failed[0]}"
    return predictor, RuntimeResult(
        runtime=runtime,
        device=predictor.device,
        precision=getattr(predictor, "precision", "fp32"),
        end_to_end_videos_per_s=0.0,  # from the timed rounds
        peak_rss_mb=memory.peak / 2**20,
        added_rss_mb=(memory.peak - memory.start) / 2**20,
        note=note,
    )


@dataclass
class _EndToEnd:
    """One end-to-end pass over the videos: the classify pipeline, or for a flow model its
    stream as ``classify --flow-model`` runs it (per video, one after the other, the flow stacks
    of ``load_flow_clip`` with the run's one method, then the model)."""

    videos: list
    segments: int
    spec: object
    options: BenchmarkOptions
    flow: object = None
    method: object = None

    def run(self, predictor) -> tuple[float, list[str]]:
        """(seconds per video, the failed videos' messages)."""
        from ispan_cli.inference.inputs import InputItem
        from ispan_cli.inference.pipeline import ClassifyOptions, run_classify

        o = self.options
        start = time.perf_counter()
        if self.flow is None:
            classify = ClassifyOptions(
                segments=self.segments, crops=1, topk=1, decoder=o.decoder,
                batch_size=o.batch_size, workers=o.workers, codec_threads=o.codec_threads,
            )  # fmt: skip
            items = [InputItem(str(v)) for v in self.videos]
            failed = [r["error"] for r in run_classify(predictor, items, classify) if r["error"]]
        else:
            failed = self._flow_stream(predictor)
        return (time.perf_counter() - start) / len(self.videos), failed

    def _flow_stream(self, predictor) -> list[str]:
        from ispan_cli.errors import ISpanError
        from ispan_cli.inference.two_stream import load_flow_clip

        crop, resize, failed = self.spec.crop, self.spec.resize, []
        for video in self.videos:
            try:
                stacks = load_flow_clip(
                    str(video), self.segments, self.flow, crop, resize, self.options.decoder,
                    method=self.method,
                )  # fmt: skip
                predictor.predict(stacks.data[None])  # (1, 1, K, 2L, S, S)
            except ISpanError as exc:
                failed.append(str(exc))
        return failed


def _time_in_rounds(predictors: dict, clips, end_to_end: _EndToEnd, runs, options) -> dict:
    """Fills each run's model and end-to-end speeds from ``options.rounds`` rounds in which
    every runtime in turn makes a model pass over the clips and then an end-to-end pass over the
    videos; returns each runtime's probabilities from its first model pass."""
    b = options.batch_size
    batches = [np.stack(clips[i : i + b]) for i in range(0, len(clips), b)]
    probs: dict[str, np.ndarray] = {}
    by_name = {run.runtime: run for run in runs}
    for _ in range(options.rounds):
        for name, predictor in predictors.items():
            start, out = time.perf_counter(), []
            for batch in batches:
                out.append(predictor.predict(batch))
            model_s = (time.perf_counter() - start) / len(clips)
            probs.setdefault(name, np.concatenate(out))
            e2e_s, _ = end_to_end.run(predictor)
            by_name[name].rounds.append({"model_s": model_s, "end_to_end_s": e2e_s})
    for run in runs:
        model_s = statistics.median(x["model_s"] for x in run.rounds)
        run.model_ms = model_s * 1e3
        run.model_videos_per_s = 1 / model_s
        run.end_to_end_videos_per_s = 1 / statistics.median(x["end_to_end_s"] for x in run.rounds)
        run.end_to_end_over_model = statistics.median(
            x["model_s"] / x["end_to_end_s"] for x in run.rounds
        )
    return probs


def _visualize_overhead(model, identity, spec, videos, options, tmp: Path) -> dict:
    """Seconds per video of classify (one video, serial) and of visualize, torch runtime."""
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions, run_classify
    from ispan_cli.runtime.device import resolve_device
    from ispan_cli.runtime.predictor import TorchPredictor
    from ispan_cli.viz.run import VisualizeOptions, run_visualize
    from ispan_cli.viz.runner import torch_runner

    device = resolve_device(options.device)
    predictor = TorchPredictor(model, identity, spec, device)
    runner = torch_runner(model, identity, spec, device)
    k = options.segments or model.config.num_segments
    classify = ClassifyOptions(
        segments=k, crops=1, topk=5, decoder=options.decoder, batch_size=1, workers=0
    )
    list(run_classify(predictor, [InputItem(str(videos[0]))], classify))  # warm-up
    c_times, v_times = [], []
    for n, video in enumerate(videos):
        start = time.perf_counter()
        list(run_classify(predictor, [InputItem(str(video))], classify))
        c_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_visualize(
            runner,
            VisualizeOptions(
                video=Path(video), output=tmp / f"viz{n}.mp4", segments=k, decoder=options.decoder
            ),
        )
        v_times.append(time.perf_counter() - start)
    c, v = statistics.median(c_times), statistics.median(v_times)
    return {
        "classify_s": float(f"{c:.6g}"),
        "visualize_s": float(f"{v:.6g}"),
        "overhead": float(f"{v / c - 1:.6g}"),
        "videos": len(videos),
        "what": "one video at a time, torch, workers 0; visualize writes the MP4 (fused map)",
    }
