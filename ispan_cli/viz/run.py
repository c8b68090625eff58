"""The visualize job: sample a video, run the model with attention, render, write the outputs.

One view (the whole video's K segments, or one window) is held at a time, so long videos render
window by window with bounded memory; the npz arrays are small (K*h*w floats per view).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.terminal import visible
from ispan_cli.video.preprocess import PreprocessSpec
from ispan_cli.viz.maps import attention_mass
from ispan_cli.viz.render import Caption, contact_sheet, crop_box, render_frame, thumbnail
from ispan_cli.viz.runner import AttentionRunner

SHEET_ROWS = 32  # at most this many views (windows) in the contact sheet, evenly spread


@dataclass(frozen=True)
class VisualizeOptions:
    video: Path
    output: Path | None = None  # default: ./<video stem>.attention.mp4
    segments: int | None = None
    level: str = "fused"  # fused | all | a pyramid level index
    alpha: float = 0.5
    colormap: str = "turbo"
    topk: int = 3
    fps: float = 2.0
    short_side: int | None = 480  # cap on the rendered frames' short side; None: original size
    maps_out: Path | None = None
    png: Path | None = None
    window: float | None = None
    stride: float | None = None
    decoder: str = "auto"
    stream: int | None = None


@dataclass
class View:
    index: int
    span: tuple[float, float] | None
    frame_indices: list[int]
    timestamps: list[float]
    topk: list[dict]
    share: list[float]


@dataclass
class VisualizeResult:
    output: Path
    codec: str
    width: int
    height: int
    frames: int
    fps: float
    maps_out: Path | None
    png: Path | None
    crop_box: tuple[float, float, float, float]
    views: list[View] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": self.fps,
            "maps_out": str(self.maps_out) if self.maps_out else None,
            "png": str(self.png) if self.png else None,
            "crop_box": [round(v, 3) for v in self.crop_box],
            "views": [vars(v) for v in self.views],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def parse_level(level: str, pyramid: tuple[str, ...]) -> list[int | None]:
    """``fused`` -> [None]; ``all`` -> [None, 0, 1, ...]; ``N`` -> [N] (None is the fused map)."""
    value = level.strip().lower()
    if value == "fused":
        return [None]
    if value == "all":
        return [None, *range(len(pyramid))]
    if value.isdigit() and int(value) < len(pyramid):
        return [int(value)]
    names = ", ".join(f"{j} ({name})" for j, name in enumerate(pyramid))
    raise UsageError(f"--level {level!r} is not one of fused, all, {names}")


# containers FFmpeg writes H.264 into, chosen by the output's suffix; .mp4 first (the default)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")


def default_output(video: Path) -> Path:
    return Path(f"{video.stem}.attention.mp4")


def run_visualize(
    runner: AttentionRunner,
    options: VisualizeOptions,
    progress: Callable[[int, int], None] | None = None,
) -> VisualizeResult:
    """Renders ``options.video``; ``progress(done, total)`` is called after each view.

    The MP4 is written under a temporary name and renamed when complete, with the output
    locked against a second writer: a failed or killed run leaves any previous file as it was.
    """
    from ispan_cli.model_folder import atomic_path
    from ispan_cli.outputs import exclusive

    check_options(options)
    output = options.output or default_output(options.video)
    with exclusive(output), atomic_path(output) as tmp:
        result = _render_video(runner, options, progress, tmp)
    return replace(result, output=output)


class _Timings:
    """Milliseconds spent per stage, summed over the views: ``with timings("model"): ...``."""

    STAGES = ("decode", "preprocess", "model", "render")

    def __init__(self) -> None:
        self.ms = dict.fromkeys(self.STAGES, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[stage] += (time.perf_counter() - start) * 1e3


@dataclass(frozen=True)
class _Layout:
    """Where a view's frames are read from and drawn: the model's crop and the display size."""

    spec: PreprocessSpec  # the model's preprocessing, one (centre) crop
    box: tuple[float, float, float, float]  # the crop in source pixels
    box_display: tuple[float, float, float, float]  # the same box in displayed pixels
    source_short: int
    display_short: int

    @classmethod
    def of(cls, info, spec: PreprocessSpec, short_side: int | None) -> _Layout:
        from ispan_cli.video.preprocess import scaled_size

        box = crop_box(info.width, info.height, spec)
        short = min(info.width, info.height)
        display_short = min(short_side, short) if short_side else short
        dw, dh = scaled_size(info.width, info.height, display_short)
        box_d = tuple(
            v * dw / info.width if i % 2 == 0 else v * dh / info.height for i, v in enumerate(box)
        )
        return cls(spec, box, box_d, short, display_short)

    def display_frames(self, reader, row: np.ndarray, model_frames: np.ndarray) -> np.ndarray:
        if self.display_short == self.spec.resize:
            return model_frames
        return _read(
            reader, row, None if self.display_short == self.source_short else self.display_short
        )


def _render_video(
    runner: AttentionRunner,
    options: VisualizeOptions,
    progress: Callable[[int, int], None] | None,
    output: Path,
) -> VisualizeResult:
    from ispan_cli.video.decoder import open_video
    from ispan_cli.video.sampling import TSNSampler, WindowSampler
    from ispan_cli.video.writer import VideoWriter

    panels = parse_level(options.level, runner.pyramid)
    k = options.segments or runner.predictor.num_segments
    spec = replace(runner.predictor.preprocessing, crops=1)  # maps belong to the centre crop
    timings = _Timings()
    arrays: dict[str, list] = {}
    sheet: list[list[np.ndarray]] = []
    views: list[View] = []
    with open_video(options.video, options.decoder, options.stream) as reader:
        info = reader.info()
        if options.window is not None:
            sampler = WindowSampler(options.window, options.stride or options.window, frames=k)
        else:
            sampler = TSNSampler(k)
        sampling = sampler.sample(reader.frame_times(), info.duration)
        flow_x = None
        if runner.flow is not None:  # a flow stream: its K stacks, shown on each stack's frame
            sampling, flow_x = _flow_view(runner, options, k, spec, reader, info.duration)
        layout = _Layout.of(info, spec, options.short_side)
        n_views = len(sampling.indices)
        sheet_views = set(np.linspace(0, n_views - 1, min(n_views, SHEET_ROWS)).round().astype(int))
        writer = VideoWriter(output, options.fps)
        try:
            for v, row in enumerate(sampling.indices):
                span = tuple(float(s) for s in sampling.spans[v]) if options.window else None
                view, masses, probs, logits, rendered = _one_view(
                    runner, reader, layout, options, panels, timings,
                    View(v, span, [int(i) for i in row],
                         [round(float(t), 6) for t in sampling.timestamps[v]], [], []),
                    writer.write, thumbnails=v in sheet_views, flow_x=flow_x,
                )  # fmt: skip
                if rendered:
                    sheet.append(rendered)
                _collect(arrays, row, sampling.timestamps[v], layout.box, masses, probs, logits)
                views.append(view)
                if progress:
                    progress(v + 1, n_views)
        except BaseException:
            writer.__exit__(RuntimeError, None, None)
            raise
        with timings("render"):
            written = writer.close()
    if options.maps_out is not None:
        _save_npz(options.maps_out, arrays, runner, sampling, windowed=options.window is not None)
    if options.png is not None:
        _save_png(options.png, contact_sheet(sheet, per_line=4 if len(panels) == 1 else 2))
    return VisualizeResult(
        output=written.path,
        codec=written.codec,
        width=written.width,
        height=written.height,
        frames=written.frames,
        fps=options.fps,
        maps_out=options.maps_out,
        png=options.png,
        crop_box=layout.box,
        views=views,
        timings_ms=timings.ms,
    )


def _one_view(runner, reader, layout: _Layout, options, panels, timings: _Timings, view: View,
              write, thumbnails: bool, flow_x=None):  # fmt: skip
    """Decodes, scores and renders one view; returns it with its masses, probabilities, logits
    and (when ``thumbnails``) small copies of its rendered frames for the contact sheet."""
    from ispan_cli.inference.pipeline import topk_entries
    from ispan_cli.runtime.predictor import softmax
    from ispan_cli.video.preprocess import preprocess

    row = np.asarray(view.frame_indices)
    k = len(row)
    with timings("decode"):
        model_frames = _read(reader, row, layout.spec.resize)
    with timings("preprocess"):
        # (1, K, 3, S, S); a flow stream's (1, K, 2L, S, S) was computed by _flow_view
        x = preprocess(model_frames, layout.spec) if flow_x is None else flow_x
    with timings("model"):
        logits, fused, levels = runner.run(x)
    with timings("decode"):
        display = layout.display_frames(reader, row, model_frames)
    with timings("render"):
        masses = [attention_mass(fused)[0], *(attention_mass(m)[0] for m in levels)]
        probs = softmax(logits[:1])[0]
        view.topk = topk_entries(runner.predictor, probs, options.topk)
        view.share = [round(float(s), 6) for s in masses[0].sum(axis=(1, 2))]
        titles = ["fused" if j is None else f"level {j} ({runner.pyramid[j]})" for j in panels]
        span = view.span
        captions = [
            Caption(
                segment=s,
                segments=k,
                frame_index=int(row[s]),
                timestamp=view.timestamps[s],
                share=masses[0].sum(axis=(1, 2)),
                topk=[(t["label"], t["score"]) for t in view.topk],
                titles=titles,
                window=f"window {view.index}: {span[0]:.1f}-{span[1]:.1f}s" if span else None,
            )
            for s in range(k)
        ]
        chosen = [masses[0 if j is None else j + 1] for j in panels]
        rendered = []
        for frame in _render_view(display, chosen, layout.box_display, captions, options):
            write(frame)
            if thumbnails:  # small copies only: memory stays bounded
                rendered.append(thumbnail(frame))
    return view, masses, probs, logits[0], rendered


def _flow_view(runner, options, k: int, spec, reader, duration):
    """A flow model's one view: the flow stacks classify and evaluate give it (TSN test
    positions, computed on the fly with its own method), and the sampling of the frame each
    stack starts at, where its maps are drawn."""
    from ispan_cli.inference.two_stream import load_flow_clip
    from ispan_cli.video.sampling import FrameSampling

    if options.window is not None:
        raise UsageError(
            "a flow model is visualized over its K flow stacks of the whole video; drop --window"
        )
    clip = load_flow_clip(
        str(options.video), k, runner.flow, spec.crop, spec.resize, options.decoder,
        options.stream,
    )  # fmt: skip
    starts = np.asarray(clip.starts, np.int64)
    times = np.asarray(reader.frame_times(), np.float64)
    sampling = FrameSampling(
        "tsn-flow", starts[None], times[starts][None], np.array([[0.0, duration or 0.0]]), False
    )
    return sampling, clip.data[0][None]  # (1, K, 2L, S, S)


def _render_view(display, masses, box, captions, options: VisualizeOptions):
    """Yields the rendered frames of one view; ``masses``: one (K, h, w) map per panel."""
    for s, caption in enumerate(captions):
        # each panel scaled by its clip-wide maximum, so colours compare across the K frames
        heats = [m[s] / max(float(m.max()), 1e-12) for m in masses]
        yield render_frame(display[s], heats, box, caption, options.alpha, options.colormap)


def check_options(options: VisualizeOptions) -> None:
    """Everything about the options that can be checked before the model loads."""
    if not 0.0 <= options.alpha <= 1.0:
        raise UsageError(f"--alpha must be between 0 and 1, got {options.alpha}")
    if options.window is None and options.stride is not None:
        raise UsageError("--stride needs --window SECONDS")
    if (options.window is not None and options.window <= 0) or (
        options.stride is not None and options.stride <= 0
    ):
        raise UsageError("--window and --stride must be positive numbers of seconds")
    if options.fps <= 0:
        raise UsageError(f"--fps must be positive, got {options.fps}")
    from ispan_cli.outputs import check_output_file

    output = options.output or default_output(options.video)
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        # FFmpeg picks the container by the name: no suffix, or an image's, failed only after
        # the whole render, with FFmpeg's own words
        raise UsageError(
            f"--output {visible(output)}: the rendering is an H.264 video; give it a .mp4 name "
            f"({', '.join(VIDEO_SUFFIXES[1:])} also work)"
        )
    for path, option in (
        (output, "--output"),
        (options.maps_out, "--maps"),
        (options.png, "--png"),
    ):
        if path is not None:
            check_output_file(path, [options.video], option)


def _read(reader, row: np.ndarray, short_side: int | None) -> np.ndarray:
    """The view's frames in sampling order; each distinct frame decoded once."""
    unique = np.unique(row)
    frames = reader.read(unique, short_side)
    return frames[np.searchsorted(unique, row)]


def _collect(arrays, row, timestamps, box, masses, probs, logits) -> None:
    values = {
        "frame_indices": np.asarray(row, np.int64),
        "timestamps": np.asarray(timestamps, np.float64),
        "crop_box": np.asarray(box, np.float64),
        "fused": masses[0],
        **{f"level_{j}": m for j, m in enumerate(masses[1:])},
        "share": masses[0].sum(axis=(1, 2)).astype(np.float32),
        "probs": probs.astype(np.float32),
        "logits": np.asarray(logits, np.float32),
    }
    for key, value in values.items():
        arrays.setdefault(key, []).append(value)


def _save_npz(path: Path, arrays, runner: AttentionRunner, sampling, windowed: bool) -> None:
    out = {k: (np.stack(v) if windowed else v[0]) for k, v in arrays.items()}
    out["labels"] = np.asarray([runner.predictor.label(i) for i in range(out["probs"].shape[-1])])
    out["pyramid"] = np.asarray(runner.pyramid)
    if windowed:
        out["window_spans"] = np.asarray(sampling.spans, np.float64)
    from ispan_cli.model_folder import atomic_open

    try:
        with atomic_open(path, "wb") as f:  # a file object: numpy would otherwise append ".npz"
            np.savez_compressed(f, **out)
    except OSError as exc:
        raise ISpanError(f"cannot write {path} ({exc.strerror})") from exc


def _save_png(path: Path, image: np.ndarray) -> None:
    import cv2

    from ispan_cli.model_folder import atomic_path

    try:
        with atomic_path(path) as tmp:  # the temporary name keeps the .png suffix
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[..., ::-1])):
                raise OSError("not written")
        ok = True
    except (OSError, cv2.error):
        ok = False
    if not ok:
        raise ISpanError(f"cannot write {path}; use a .png name in a writable folder")
