"""``classify --save-video``: a browser-playable labelled MP4 whose frames match the input, whose
top-1 strip follows the timeline, and which still decodes when the run is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.data import synthetic
from ispan_cli.inference.labelled_video import _PALETTE
from ispan_cli.video.writer import write_video

FPS = 16  # the synthetic clips' rate


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory) -> Path:
    """Two synthetic clips of different classes back to back: 2 s + 2 s."""
    a = synthetic.make_clip(1, "val", 0)
    b = synthetic.make_clip(1, "val", 3)
    assert a.label != b.label
    frames = np.concatenate([a.render(range(32)), b.render(range(32))])
    path = tmp_path_factory.mktemp("save") / "two.mp4"
    write_video(path, frames, FPS, crf=12)
    return path


def _decode(path: Path) -> tuple[list[np.ndarray], list[float], av.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
        return frames, times, stream.codec_context.name, stream.codec_context.pix_fmt


def _nearest_class(pixel: np.ndarray) -> int:
    return int(np.argmin(((_PALETTE.astype(int) - pixel.astype(int)) ** 2).sum(1)))


@pytest.mark.slow
def test_saved_video_matches_the_input_and_its_strip_follows_the_timeline(two_classes, tmp_path):
    out, records_file = tmp_path / "labelled.mp4", tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app,
        ["classify", str(two_classes), "--window", "1", "--segments", "4", "-q",
         "--save-video", str(out), "-o", str(records_file)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    frames, times, codec, pix_fmt = _decode(out)
    in_frames, in_times, _, _ = _decode(two_classes)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert len(frames) == len(in_frames) == 64
    assert times == pytest.approx(in_times)
    assert frames[0].shape == in_frames[0].shape
    top1 = [r["topk"][0]["index"] for r in records]
    assert len(set(top1)) > 1, "the timeline should change class between the two clips"
    starts = np.array([r["window"]["start"] for r in records])
    # The last frame's strip covers the whole video: column c shows the time (c + 0.5) w / W,
    # coloured by the top-1 of the window in effect at the frame on screen then.
    last = frames[-1]
    h, w = last.shape[:2]
    row = last[h - 2]
    duration = 64 / FPS
    agree = 0
    for c in range(w - 2):  # the last columns hold the "now" marker
        tc = (c + 0.5) * duration / w
        frame_time = np.floor(tc * FPS + 1e-9) / FPS
        window = int(np.searchsorted(starts, frame_time + 1e-9, side="right")) - 1
        agree += _nearest_class(row[c]) == top1[window] % len(_PALETTE)
    assert agree >= 0.9 * (w - 2), f"{agree} of {w - 2} strip columns match the timeline"


def test_save_video_needs_one_input(two_classes, tmp_path):
    result = CliRunner().invoke(
        app,
        ["classify", str(two_classes), str(two_classes), "--save-video", str(tmp_path / "o.mp4")],
    )
    assert result.exit_code == 2
    assert "--save-video takes one input" in result.output


@pytest.mark.slow
def test_killed_run_leaves_a_video_that_decodes(tmp_path):
    from ispan_cli.video.synthetic import write_synthetic_video

    video = write_synthetic_video(tmp_path / "long.mp4", seconds=30.0, width=320, height=240)
    out = tmp_path / "partial.mp4"
    cmd = [sys.executable, "-m", "ispan_cli", "classify", str(video), "--window", "1", "-q",
           "--save-video", str(out), "-o", str(tmp_path / "r.jsonl")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (
                out.exists() and out.stat().st_size > 800_000
            ):  # several 2 s fragments (~185 KB each)
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    decoded = 0
    with av.open(str(out)) as container:
        try:
            for frame in container.decode(video=0):
                assert frame.width == 320
                decoded += 1
        except av.error.FFmpegError:
            pass  # the fragment being written when the run died is cut short
    assert decoded >= 2 * 25  # at least one whole 2 s fragment plays
    assert decoded < 30 * 25  # and it was really cut short


def test_labelled_video_draws_the_window_in_effect(tmp_path):
    """LabelledVideo alone (no model): records of two classes; every frame's strip shows, up to
    its own time, the class of the record it was drawn with."""
    from ispan_cli.inference.labelled_video import LabelledVideo

    def record(cls, start):
        entry = {"rank": 1, "index": cls, "label": f"class {cls}", "score": 0.9}
        return {"topk": [entry], "window": {"start": start, "end": start + 1.0}}

    video = LabelledVideo(tmp_path / "l.mp4", FPS, topk=1, span=2.0)
    base = np.full((64, 96, 3), 128, np.uint8)
    for i in range(2 * FPS):
        video.write(base, i / FPS, record(2 if i < FPS else 5, float(i >= FPS)))
    video.close()
    frames, times, codec, _ = _decode(tmp_path / "l.mp4")
    assert len(frames) == 2 * FPS and codec == "h264"
    assert times == pytest.approx([i / FPS for i in range(2 * FPS)])
    strip = frames[-1][-2]
    w = strip.shape[0]
    assert _nearest_class(strip[w // 4]) == 2  # t = 0.5 s: the first record
    assert _nearest_class(strip[3 * w // 4]) == 5  # t = 1.5 s: the second
    assert _nearest_class(frames[FPS // 2][-2][3 * w // 4]) != 5  # not drawn before its time


@pytest.mark.slow
def test_attention_heat_covers_the_models_crop(two_classes, tmp_path):
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.viz.render import crop_box

    videos = {}
    for name, extra in (("plain", []), ("heat", ["--attention"])):
        out = tmp_path / f"{name}.mp4"
        args = ["classify", str(two_classes), "--window", "1", "--segments", "4", "-q",
                "--save-video", str(out), "-f", "jsonl", *extra]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        videos[name] = _decode(out)[0]
    spec = load_model(None, device="cpu").preprocessing
    h, w = videos["plain"][0].shape[:2]
    x0, y0, x1, y1 = (round(v) for v in crop_box(w, h, spec))
    plain, heat = (videos[k][40].astype(float) for k in ("plain", "heat"))
    strip = h - max(4, h // 16) - 2  # above the strip; below the text block
    outside = np.zeros((h, w), bool)
    outside[:strip] = True
    outside[y0:y1, x0:x1] = False
    outside[: h // 2] = False  # the top-k text block is drawn on both
    if outside.any():  # what the model did not see is dimmed (x 0.55)
        ratio = heat[outside].mean() / plain[outside].mean()
        assert ratio == pytest.approx(0.55, abs=0.08)
    inside = np.zeros((h, w), bool)
    inside[max(y0, h // 2) : min(y1, strip), x0:x1] = True
    assert np.abs(heat[inside] - plain[inside]).mean() > 10  # coloured by the heat
