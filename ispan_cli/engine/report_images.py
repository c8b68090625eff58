"""The report's pictures: a sample frame of a video of each class of the most confused pairs, and
the attention overlays of a few validation clips, drawn by ``ispan_cli.viz`` as ``ispan visualize``
draws them. Each picture is small JPEG bytes or the reason it is missing, so the page renders
whatever happened to one video or to the model.

The paths come from files of the run or evaluation folder: only local regular files (and the
synthetic set's ``synthetic:<subset>:<index>``) are read, never a URL, a FIFO or a device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ispan_cli.errors import ISpanError

FRAME_SHORT = 128  # a pair's sample frame: short side in pixels
SHEET_CLIPS = 4  # validation clips in the attention contact sheet
SHEET_SHORT = 180  # frames of the sheet are drawn at this short side
JPEG_QUALITY = 80
# what reading one video or running the model on it can raise: a picture left out, never a
# failed report (torch, PyAV and OpenCV raise these kinds)
FAILURES = (ISpanError, OSError, ValueError, RuntimeError, MemoryError)


@dataclass(frozen=True)
class Video:
    """A validation video as the run or evaluation recorded it."""

    path: str
    label: str
    predicted: str | None = None  # None: the folder records no per-video prediction


@dataclass(frozen=True)
class Picture:
    """One image for the page (plain-text caption), or why there is none."""

    caption: str
    jpeg: bytes | None = None
    missing: str = ""


@dataclass(frozen=True)
class Reading:
    """How the run read its videos."""

    synthetic_seed: int = 1  # the synthetic set's seed (the split)
    decoder: str = "auto"


def encode_jpeg(image: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) -> JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return buf.tobytes()


def read_clip(
    path: str, k: int, shorts: tuple[int, ...], reading: Reading
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The K TSN centre frames of ``path`` (the frames evaluation scores), once per short side
    in ``shorts`` (each (K, H, W, 3), no larger than the video), with their indices and times."""
    from ispan_cli.video.sampling import TSNSampler

    sampler = TSNSampler(k)
    if path.startswith("synthetic:"):
        from ispan_cli.data import synthetic

        _, subset, index = path.split(":")
        clip = synthetic.make_clip(reading.synthetic_seed, subset, int(index))
        times = np.arange(clip.spec.frames) / clip.spec.fps
        row = sampler.sample(times).indices[0]
        frames = clip.render(row)
        return [frames for _ in shorts], row, times[row]
    if "://" in path:
        raise ISpanError("not a local file; the report reads local videos only")
    if not Path(path).is_file():
        raise ISpanError("no such file" if not Path(path).exists() else "not a regular file")
    from ispan_cli.video.decoder import open_video

    with open_video(path, reading.decoder) as reader:
        info = reader.info()
        times = reader.frame_times()
        row = sampler.sample(times, info.duration).indices[0]
        unique = np.unique(row)
        short = min(info.width, info.height)
        read: dict[int | None, np.ndarray] = {}
        for s in {min(s, short) for s in shorts}:  # each size decoded once
            read[s] = reader.read(unique, s if s < short else None)[np.searchsorted(unique, row)]
    return [read[min(s, short)] for s in shorts], row, times[row]


def sample_frame(video: Video, caption: str, reading: Reading) -> Picture:
    """The middle frame of ``video`` (the TSN centre of one segment), small."""
    try:
        (frames,), _, _ = read_clip(video.path, 1, (FRAME_SHORT,), reading)
        return Picture(caption, encode_jpeg(frames[0]))
    except FAILURES as exc:
        return Picture(caption, missing=f"frame missing: {video.path}: {_reason(exc)}")


def load_attention_runner(spec: str, runtime: str = "torch"):
    """The model of the sheet on the CPU (a few clips: no device start-up, nothing to share)."""
    from ispan_cli.viz.runner import load_runner

    runner = load_runner(spec, runtime, "cpu")
    if runner.flow is not None:
        raise ISpanError(
            "a flow stream attends over flow stacks; draw them with `ispan visualize --model`"
        )
    return runner


def attention_clip(runner, video: Video, reading: Reading) -> Picture:
    """One clip's K frames, each with its fused attention mass over the model's crop, the top-3
    on the first and each segment's share along the bottom (``ispan visualize``'s frames)."""
    from ispan_cli.inference.pipeline import topk_entries
    from ispan_cli.runtime.predictor import softmax
    from ispan_cli.video.preprocess import preprocess, resize_short_side
    from ispan_cli.viz.maps import attention_mass
    from ispan_cli.viz.render import Caption, contact_sheet, crop_box, render_frame

    caption = f"{video.path} ({video.label})"
    try:
        spec = replace(runner.predictor.preprocessing, crops=1)  # maps belong to the centre crop
        k = runner.predictor.num_segments
        (model_frames, display), row, times = read_clip(
            video.path, k, (spec.resize, SHEET_SHORT), reading
        )
        display = resize_short_side(display, SHEET_SHORT)  # small videos too: room for the text
        logits, fused, _ = runner.run(preprocess(model_frames, spec))  # (1, K, 3, S, S) in
        mass = attention_mass(fused)[0]  # (K, h, w), summing to 1 over the clip
        top = topk_entries(runner.predictor, softmax(logits[:1])[0], 3)
        share = mass.sum(axis=(1, 2))
        box = crop_box(display.shape[2], display.shape[1], spec)
        frames = []
        for s in range(k):
            text = Caption(s, k, int(row[s]), float(times[s]), share,
                           [(t["label"], t["score"]) for t in top], ["fused"])  # fmt: skip
            # scaled by the clip's largest value, as visualize does: colours compare across K
            heat = mass[s] / max(float(mass.max()), 1e-12)
            frames.append(render_frame(display[s], [heat], box, text))
        sheet = contact_sheet([frames], per_line=4)
        caption += f", predicted {top[0]['label']} ({top[0]['score']:.2f})"
        return Picture(caption, encode_jpeg(sheet))
    except FAILURES as exc:
        return Picture(caption, missing=f"attention not drawn: {video.path}: {_reason(exc)}")


def sheet_videos(videos: list[Video], classes_in_order: list[str], n: int = SHEET_CLIPS):
    """Up to ``n`` videos of different classes, in ``classes_in_order`` (worst class first); a
    video the model got wrong first within its class."""
    chosen = []
    for name in dict.fromkeys(classes_in_order):  # each class once
        of_class = [v for v in videos if v.label == name]
        if of_class:
            wrong = [v for v in of_class if v.predicted is not None and v.predicted != name]
            chosen.append((wrong or of_class)[0])
        if len(chosen) == n:
            break
    return chosen


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
