"""Frame identity on real footage: a UCF101 clip (XviD, packed B-frames), checked strictly.

Frame i must be the i-th frame in presentation order as ffmpeg numbers them
(``select=eq(n\\,i)``). References: a full sequential PyAV decode (same FFmpeg, so pixels are
bit-identical), OpenCV's own FFmpeg build, and the ffmpeg program where it is installed. "Strictly":
the returned frame must be closer to reference frame i than to frames i-1 and i+1, since on a
near-static scene a mean-difference threshold would let a neighbour through.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.video import TSNSampler, open_video, probe, sample_video

REAL = Path(__file__).parent / "real" / "v_ApplyEyeMakeup_g01_c01.avi"
FRAMES = 164
runner = CliRunner()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Every frame, decoding the whole file in order: (N, H, W, 3) RGB."""
    with av.open(str(REAL)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_strictly_frame(got: np.ndarray, ref: np.ndarray, i: int) -> None:
    """``got`` matches ref[i] better than either neighbour."""
    own = _mad(got, ref[i])
    for j in (i - 1, i + 1):
        if 0 <= j < len(ref):
            assert own < _mad(got, ref[j]), (
                f"frame {i}: difference {own:.3f} to its own reference is not below "
                f"{_mad(got, ref[j]):.3f} to frame {j}"
            )


def test_the_clip_is_the_packed_bitstream_case():
    # Guards the fixture: the bug lived in XviD's packed B-frames and their 6-byte N-VOPs.
    with av.open(str(REAL)) as container:
        stream = container.streams.video[0]
        assert container.format.name == "avi" and stream.codec_context.name == "mpeg4"
        sizes = [p.size for p in container.demux(stream) if p.size]
    assert len(sizes) == FRAMES and sizes.count(6) > 40


def test_reference_frames_differ_from_their_neighbours(reference):
    # The strict check needs frames that can be told apart.
    assert len(reference) == FRAMES
    assert min(_mad(reference[i], reference[i + 1]) for i in range(FRAMES - 1)) > 0


@pytest.mark.parametrize("segments", [1, 2, 3, 8, 16, 32])
@pytest.mark.parametrize("mode", ["centre", "random"])
def test_every_tsn_sampled_frame_is_the_sequential_decode_frame(segments, mode, reference):
    for seed in range(3 if mode == "random" else 1):
        sampled = sample_video(REAL, TSNSampler(segments, mode=mode, seed=seed))
        indices = sampled.sampling.indices[0].tolist()
        for i, frame in zip(indices, sampled.frames[0], strict=True):
            np.testing.assert_array_equal(frame, reference[i], err_msg=f"frame {i}")
            assert_strictly_frame(frame, reference, i)


def test_any_order_of_reads_on_one_reader(reference):
    rng = np.random.default_rng(0)
    with open_video(REAL) as reader:
        for trial in range(12):
            wanted = rng.choice(FRAMES, size=int(rng.integers(1, 10)), replace=False).tolist()
            if trial % 3 == 0:
                wanted.sort(reverse=True)  # backwards: every read seeks back
            for i, frame in zip(wanted, reader.read(wanted), strict=True):
                np.testing.assert_array_equal(frame, reference[i], err_msg=f"frame {i}")


def test_probe_counts_every_frame():
    info = probe(REAL)
    assert (info.num_frames, info.width, info.height, info.fps) == (FRAMES, 320, 240, 25.0)
    assert info.truncated is False and info.warnings == ()
    assert info.variable_frame_rate is False and info.duration == pytest.approx(FRAMES / 25)


def test_opencv_build_of_ffmpeg_agrees(reference):
    """Independent decoder build: OpenCV's sequential read, frame by frame."""
    capture = cv2.VideoCapture(str(REAL))
    theirs = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        theirs.append(frame[..., ::-1])
    capture.release()
    theirs = np.stack(theirs)
    assert len(theirs) == FRAMES
    sampled = sample_video(REAL, TSNSampler(32))
    for i, frame in zip(sampled.sampling.indices[0].tolist(), sampled.frames[0], strict=True):
        assert_strictly_frame(frame, theirs, i)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed")
def test_ffmpeg_select_n_agrees():
    """The definition itself: ffmpeg's ``select=eq(n\\,i)`` for each sampled index and its
    neighbours."""
    sampled = sample_video(REAL, TSNSampler(16))
    indices = sampled.sampling.indices[0].tolist()
    wanted = sorted({j for i in indices for j in (i - 1, i, i + 1) if 0 <= j < FRAMES})
    expr = "+".join(f"eq(n\\,{j})" for j in wanted)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(REAL), "-map", "0:v:0", "-vf", f"select={expr}",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 240, 320, 3)
    assert len(frames) == len(wanted)
    ffmpeg = np.zeros((FRAMES, 240, 320, 3), np.uint8)
    ffmpeg[wanted] = frames
    for i, frame in zip(indices, sampled.frames[0], strict=True):
        assert_strictly_frame(frame, ffmpeg, i)


def test_frames_command_on_the_clip(reference, tmp_path):
    out = tmp_path / "frames"
    result = runner.invoke(
        app, ["frames", str(REAL), "--segments", "8", "--out", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    indices = [f["index"] for f in doc["frames"]]
    assert indices == [int(FRAMES / 8 * k + FRAMES / 16) for k in range(8)]
    for i in indices:
        png = cv2.imread(str(out / f"frame_{i:06d}.png"))[..., ::-1]
        np.testing.assert_array_equal(png, reference[i])


def test_classify_on_the_clip_matches_an_independent_computation():
    from ispan_cli.nn import load_model, read_config
    from ispan_cli.video.preprocess import preprocess, scaled_size, spec_from_config
    from ispan_cli.zoo import DEFAULT_MODEL, zoo_dir

    result = runner.invoke(app, ["classify", str(REAL), "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["error"] is None
    indices = [int(FRAMES / 8 * k + FRAMES / 16) for k in range(8)]
    assert record["frames"]["indices"] == indices
    # Independent: decode everything in order, pick the TSN centres, scale with the same swscale
    # call the reader uses (the frame choice is what is under test), run the model.
    folder = zoo_dir() / DEFAULT_MODEL
    config, doc = read_config(folder)
    spec = spec_from_config(config, doc)
    width, height = scaled_size(320, 240, spec.resize)
    with av.open(str(REAL)) as container:
        frames = [
            f.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
            for f in container.decode(video=0)
        ]
    x = torch.from_numpy(preprocess(np.stack([frames[i] for i in indices]), spec))
    with torch.no_grad():
        probs = load_model(folder)(x).softmax(-1)[0].numpy()
    top = np.argsort(-probs)[:5]
    assert [t["index"] for t in record["topk"]] == top.tolist()
    np.testing.assert_allclose([t["score"] for t in record["topk"]], probs[top], atol=1e-5)


def test_visualize_on_the_clip(tmp_path):
    out = tmp_path / "attention.mp4"
    result = runner.invoke(app, ["visualize", str(REAL), "-o", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 8
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_a_seek_that_cannot_be_numbered_falls_back_to_counting_from_the_start(case_video):
    """Where the landing keyframe is unknown (e.g. an open GOP the parser misjudged), the reader
    must not guess: it decodes from the start, which is always right."""
    from .conftest import CASES
    from .videogen import read_index

    case = next(c for c in CASES if c.name == "h264-avi")
    with open_video(case_video(case)) as reader:
        assert reader._scan.sequential and len(reader._seek_points()) > 1
        reader._landings = {}  # no keyframe is recognised where a seek lands
        wanted = [140, 3, 77, 149, 0]
        assert [read_index(f) for f in reader.read(wanted)] == wanted
        assert len(reader._seek_points()) == 1  # seeking is off for this file from now on


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_train_and_data_check_on_a_folder_dataset_of_copies(tmp_path):
    """The way the bug met users: a UCF101-like folder dataset whose clips all decode."""
    from tests.engine.runs import ispan, metrics_rows

    root = tmp_path / "data"
    for subset, copies in (("train", 3), ("val", 1)):
        for cls in ("apply_eye_makeup", "apply_lipstick"):
            folder = root / subset / cls
            folder.mkdir(parents=True)
            for i in range(copies):
                shutil.copyfile(REAL, folder / f"v_{cls}_g0{i}_c01.avi")
    checked = ispan("data", "check", str(root), "--segments", "8", "--workers", "2",
                    "--format", "json", check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    doc = json.loads(checked.stdout)
    assert (doc["files"], doc["ok"], doc["failed"]) == (8, 8, 0)
    run = tmp_path / "run"
    ispan("train", "--dataset", "folder", "--data-root", str(root), "--arch", "istpan_tiny",
          "--pretrained", "none", "--segments", "8", "--input-size", "64", "--batch-size", "2",
          "--epochs", "1", "--workers", "1", "--device", "cpu", "--quiet",
          "--max-skipped", "0", "--output", str(run))  # fmt: skip
    (row,) = metrics_rows(run)
    assert row["skipped_videos"] == 0 and row["val_videos"] == 2
    summary = json.loads((run / "data_check.json").read_text())
    assert summary["listed"] == 8 and summary["skipped"] == 0
