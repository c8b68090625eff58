"""``ispan classify --flow-model``: two-stream inference on a video file, the flow computed on
the fly for the frames the flow stream needs, with the flow model's own FlowSpec.

Per video: the RGB stream reads its K segment centres as ``classify`` always does; the flow
stream takes K stacks of L flows at TSN's test positions (``data.flow_frames.segment_starts``
over the video's N - 1 flows), decodes only the frames those flows need (at the spec's short
side), computes each flow with the spec's method (``ispan_cli.flow.methods``), quantises it with
the spec's bound and passes it through the same JPEG encoding ``ispan flow extract`` writes, so
the model sees what it would have read from extracted flow. The record's ``topk`` is the fused
score: the streams' probabilities averaged with the fusion weights (normalised to sum to 1, so
the fused score is a probability); ``streams`` holds each stream's own top-k.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ispan_cli.data.flow_format import JPEG_QUALITY, quantise
from ispan_cli.data.flow_frames import centre_crop_flow, segment_starts
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.flow.methods import FlowMethod
from ispan_cli.inference.inputs import InputItem
from ispan_cli.inference.pipeline import (
    ClassifyOptions,
    clip_record,
    error_record,
    topk_entries,
)
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.video.clip import load_clip
from ispan_cli.video.flow_spec import FlowSpec


@dataclass(frozen=True)
class FlowClip:
    """The flow stream's input of one video: (1, K, 2L, S, S) and the flows it used."""

    data: np.ndarray
    starts: list[int]  # 0-based first flow of each segment's stack (flow i: frame i -> i + 1)
    flows: int  # the video's N - 1 flows
    decode_ms: float
    flow_ms: float


@dataclass
class TwoStream:
    """The flow stream beside the RGB predictor: its predictor, FlowSpec, label order and the
    fusion weights (RGB, flow)."""

    flow: Predictor
    spec: FlowSpec
    weights: tuple[float, float]
    columns: np.ndarray  # for each RGB label, the flow model's column with that label
    segments: int | None = None  # K of the flow stream; None: the flow model's own

    def settings(self) -> dict:
        """What the records' settings add (``--resume`` compares them)."""
        return {
            "flow_model": self.flow.identity.id,
            "flow_sha256": self.flow.identity.sha256,
            "fusion_weights": list(self.weights),
        }


def two_stream(
    rgb: Predictor,
    flow: Predictor,
    spec: FlowSpec | None,
    weights: Sequence[float],
    segments: int | None = None,
) -> TwoStream:
    """Checks that the two models can be fused: a flow model with a FlowSpec beside an RGB one,
    the same classes (matched by name), two finite non-negative weights not both zero."""
    if spec is None:
        raise UsageError(
            f"--flow-model {flow.identity.id} is an RGB model (3 input channels); give a flow "
            "model (ispan train --modality flow, or an imported MMAction2 flow checkpoint)"
        )
    if len(weights) != 2 or any(not np.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise UsageError(
            f"--fusion-weights {','.join(f'{w:g}' for w in weights)}: give two finite, "
            "non-negative weights (RGB, flow), not both zero, e.g. 1,1.5"
        )
    if not rgb.labels or not flow.labels:
        raise UsageError("both models need labels in config.json to be fused class by class")
    rgb_labels = list(rgb.labels)
    flow_labels = {name.lower(): i for i, name in enumerate(flow.labels)}
    missing = [name for name in rgb_labels if name.lower() not in flow_labels]
    if missing or len(flow_labels) != len(rgb_labels):
        raise UsageError(
            f"--model and --flow-model do not have the same classes ({len(rgb_labels)} and "
            f"{len(flow_labels)}; e.g. {missing[:3]} only in --model): fuse two streams "
            "trained on the same dataset"
        )
    columns = np.array([flow_labels[name.lower()] for name in rgb_labels], np.int64)
    return TwoStream(flow, spec, (float(weights[0]), float(weights[1])), columns, segments)


def load_two_stream(
    rgb: Predictor,
    flow_model: str,
    weights: str,
    window: float | None,
    runtime: str = "torch",
    device: str = "auto",
    precision: str = "fp32",
    timeout: float | None = None,
) -> TwoStream:
    """``--flow-model`` and ``--fusion-weights`` (``"1,1.5"``) beside the RGB predictor."""
    from ispan_cli.runtime.loading import load_model

    if window is not None:
        raise UsageError(
            "--flow-model classifies whole video files; drop --window (and live sources, "
            "--save-video): the timeline has no flow stream yet"
        )
    try:
        values = [float(v) for v in weights.replace(",", " ").split()]
    except ValueError:
        raise UsageError(
            f"--fusion-weights {weights!r}: give two numbers, RGB then flow, e.g. 1,1.5"
        ) from None
    loaded = load_model(flow_model, runtime, device, precision, timeout)
    return two_stream(rgb, loaded.predictor(), loaded.flow, values)


def load_flow_clip(
    path: str, segments: int, spec: FlowSpec, crop: int, resize: int, decoder: str = "auto",
    stream: int | None = None, method: FlowMethod | None = None,
) -> FlowClip:  # fmt: skip
    """The flow stream's input of ``path`` as the flow model's training and evaluation saw it.

    ``method``: the spec's flow method made once by a caller that loops over videos (RAFT loads
    its weights when made, OpenCV builds its solver), used from that caller's thread only:
    OpenCV's solvers are not safe to share between threads. None: made for this video."""
    from ispan_cli.video import open_video

    start = time.perf_counter()
    with open_video(path, decoder, stream) as reader:
        n = reader.info().num_frames
        if n < 2:
            raise ISpanError(f"{path} has {n} frame(s); the flow stream needs at least 2")
        count = n - 1
        starts = segment_starts(count, segments, spec.length)  # (K,)
        # flow f (0-based) is frame f -> f + 1; stacks past the last flow repeat it (TSN)
        wanted = np.minimum(starts[:, None] + np.arange(spec.length)[None, :], count - 1)
        unique = np.unique(wanted)
        frame_ids = np.unique(np.concatenate([unique, unique + 1]))
        frames = reader.read(frame_ids.tolist(), spec.short_side)  # (F, H, W, 3)
    decoded = time.perf_counter()
    if method is None:
        from ispan_cli.flow.methods import create_method

        method = create_method(spec.method, "auto")
    elif method.name != spec.method:
        raise ValueError(f"a {method.name} flow method given for a {spec.method} flow spec")
    at = {int(f): i for i, f in enumerate(frame_ids)}
    levels = {}
    for f in unique.tolist():
        pair = np.stack([frames[at[f]], frames[at[f + 1]]])
        flow = method.flows(pair)[0]  # (H, W, 2) pixels
        levels[f] = np.stack([_jpeg(quantise(flow[..., c], spec.bound)) for c in (0, 1)], -1)
    k, length = wanted.shape
    stacks = np.stack([np.concatenate([levels[int(f)] for f in row], -1) for row in wanted])
    assert stacks.shape[0] == k and stacks.shape[-1] == 2 * length  # (K, H, W, 2L) x0 y0 x1..
    data = centre_crop_flow(stacks, crop, resize, spec.mean, spec.std)[None]  # (1, K, 2L, S, S)
    return FlowClip(
        data, [int(s) for s in starts], count, (decoded - start) * 1e3,
        (time.perf_counter() - decoded) * 1e3,
    )  # fmt: skip


def _jpeg(levels: np.ndarray) -> np.ndarray:
    """uint8 levels after the JPEG round trip ``ispan flow extract`` gives them."""
    import cv2

    ok, data = cv2.imencode(".jpg", levels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ISpanError("cannot encode a flow image as JPEG")
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def run_two_stream(
    rgb: Predictor, streams: TwoStream, items: Iterable[InputItem], options: ClassifyOptions
) -> Iterator[dict]:
    """Yields one record per input, in input order: fused top-k, and each stream's.

    The flow method is made once for the whole run, not per video (RAFT would reload its weights
    for each); the videos are read one after the other in the calling thread, so one method
    object serves them all. A method this machine cannot run is one error before the first
    record."""
    from ispan_cli.flow.methods import create_method

    spec = replace(rgb.preprocessing, crops=options.crops)
    method = create_method(streams.spec.method, "auto")
    flow_pre = streams.flow.preprocessing
    settings = {**options.settings(), **streams.settings()}
    w_rgb, w_flow = streams.weights
    total = w_rgb + w_flow
    for item in items:
        if item.error is not None:
            yield error_record(rgb, item.path, item.error, settings)
            continue
        try:
            clip = load_clip(item.path, options.segments, spec, options.decoder, options.stream)
            flow_clip = load_flow_clip(
                item.path, streams.segments or streams.flow.num_segments, streams.spec,
                flow_pre.crop, flow_pre.resize, options.decoder, options.stream, method,
            )  # fmt: skip
            t0 = time.perf_counter()
            p_rgb = rgb.predict(clip.data[None])[0]  # (C,)
            p_flow = streams.flow.predict(flow_clip.data[None])[0][streams.columns]
            model_ms = (time.perf_counter() - t0) * 1e3
        except Exception as exc:  # one bad video (a decoder crash too) never stops the job
            message = str(exc) if isinstance(exc, ISpanError) else f"{type(exc).__name__}: {exc}"
            yield error_record(rgb, item.path, message, settings)
            if options.fail_fast:
                return
            continue
        fused = (w_rgb * p_rgb + w_flow * p_flow) / total
        record = clip_record(rgb, clip, fused, options, model_ms)
        record["settings"] = settings
        record["timings_ms"]["flow"] = round(flow_clip.decode_ms + flow_clip.flow_ms, 3)
        record["streams"] = {
            "rgb": {"model": rgb.identity.id, "topk": topk_entries(rgb, p_rgb, options.topk)},
            "flow": {
                "model": streams.flow.identity.id,
                "topk": topk_entries(rgb, p_flow, options.topk),  # in the RGB label order
                "flow": {**_described(streams.spec), "starts": flow_clip.starts},
            },
        }
        record["fusion"] = {
            "weights": [w_rgb, w_flow],
            "scores": "weighted mean of the streams' probabilities",
        }
        yield record


def _described(spec: FlowSpec) -> dict:
    return {"method": spec.method, "bound": spec.bound, "length": spec.length,
            "short_side": spec.short_side}  # fmt: skip
