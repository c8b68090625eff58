"""`ispan flow extract` against OpenCV's own TV-L1 and DIS on clips with known motion."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ispan_cli.flow.batch import FlowOptions, run_flow_extract
from tests.flow.clips import SHIFT, decode_independently, shifted_frames, write_clip

BOUND = 20.0


def reference_flows(frames: np.ndarray, method: str) -> np.ndarray:
    """OpenCV's flow between consecutive frames, computed here with a fresh algorithm."""
    if method == "tvl1":
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
    else:
        algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([algo.calc(a, b, None) for a, b in itertools.pairwise(grays)])


def jpeg(levels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", levels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def documented_quantisation(v: np.ndarray, bound: float = BOUND) -> np.ndarray:
    # README / flow.json: q = clip(rint(255 * (v + bound) / (2 * bound)), 0, 255)
    return np.clip(np.round(255.0 * (v + bound) / (2.0 * bound)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    frames = shifted_frames()
    path = write_clip(tmp_path_factory.mktemp("clips") / "walk.mkv", frames)
    assert np.array_equal(decode_independently(path), frames)  # lossless: the frames we made
    return path, frames


@pytest.mark.parametrize("method, layout", [("tvl1", "rawframes"), ("dis", "uv")])
def test_jpegs_are_opencvs_flow_after_the_documented_quantisation(clip, tmp_path, method, layout):
    path, frames = clip
    out = tmp_path / "flow"
    report = run_flow_extract(
        FlowOptions(str(out), (str(path),), method=method, layout=layout, rgb=layout == "rawframes")
    )
    assert [r.status for r in report.results] == ["done"]
    ref = reference_flows(frames, method)
    for i, flow in enumerate(ref, 1):
        if layout == "rawframes":
            x_file, y_file = (
                out / "walk" / f"flow_x_{i:05d}.jpg",
                out / "walk" / f"flow_y_{i:05d}.jpg",
            )
        else:
            x_file, y_file = (
                out / "u" / "walk" / f"frame{i:06d}.jpg",
                out / "v" / "walk" / f"frame{i:06d}.jpg",
            )
        assert x_file.read_bytes() == jpeg(documented_quantisation(flow[..., 0])), x_file
        assert y_file.read_bytes() == jpeg(documented_quantisation(flow[..., 1])), y_file
        # and the flow is the motion we made: (dx, dy) away from the borders
        x = cv2.imread(str(x_file), cv2.IMREAD_GRAYSCALE).astype(np.float64) * 40 / 255 - 20
        y = cv2.imread(str(y_file), cv2.IMREAD_GRAYSCALE).astype(np.float64) * 40 / 255 - 20
        inner = (slice(8, -8), slice(8, -8))
        assert abs(np.median(x[inner]) - SHIFT[0]) < 0.35
        assert abs(np.median(y[inner]) - SHIFT[1]) < 0.35
    n = len(frames) - 1
    folder = out / "walk" if layout == "rawframes" else out / "u" / "walk"
    assert not (folder / f"flow_x_{n + 1:05d}.jpg").exists()
    meta = json.loads((folder / "flow.json").read_text())
    assert (meta["frames"], meta["flows"], meta["width"], meta["height"]) == (8, 7, 64, 48)
    assert meta["spec"]["method"] == method and meta["spec"]["bound"] == BOUND
    assert meta["spec"]["layout"] == layout
    if method == "tvl1":
        assert meta["spec"]["params"]["tau"] == 0.25 and meta["spec"]["params"]["lambda"] == 0.15
    if layout == "rawframes":  # --rgb: the decoded frames, as OpenCV would write them
        for i, frame in enumerate(frames, 1):
            img = (folder / f"img_{i:05d}.jpg").read_bytes()
            assert img == jpeg(np.ascontiguousarray(frame[..., ::-1]))
    else:
        assert (out / "v" / "walk" / "flow.json").is_file()


def test_quantisation_clips_at_the_bound():
    from ispan_cli.data.flow_format import dequantise, quantise

    v = np.array([-100.0, -20.0, -0.1, 0.0, 0.0784, 19.9, 20.0, 55.0])
    assert quantise(v).tolist() == [0, 0, 127, 128, 128, 254, 255, 255]
    assert np.array_equal(quantise(v), documented_quantisation(v))
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantise(dequantise(levels)), levels)  # a level maps back to itself
    assert np.abs(dequantise(quantise(v[2:-1])) - v[2:-1]).max() <= 20 / 255 + 1e-6


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_resume_skips_finished_videos_and_redoes_partial_ones(tmp_path):
    frames = shifted_frames(n=5)
    a = write_clip(tmp_path / "in" / "a.mkv", frames)
    write_clip(tmp_path / "in" / "b.mkv", shifted_frames(n=5, seed=1))
    out = tmp_path / "flow"
    opts = FlowOptions(str(out), (str(tmp_path / "in"),), method="dis")
    first = run_flow_extract(opts)
    assert [r.status for r in first.results] == ["done", "done"]
    good = {p.name: p.read_bytes() for p in (out / "b").iterdir()}
    before_a = _mtimes(out / "a")
    # b is left as a killed run leaves it: no record, a damaged file, a stale extra one
    (out / "b" / "flow.json").unlink()
    (out / "b" / "flow_x_00002.jpg").write_bytes(b"cut short")
    (out / "b" / "flow_x_00099.jpg").write_bytes(b"stale")
    second = run_flow_extract(opts)
    assert {r.name: r.status for r in second.results} == {"a": "skipped", "b": "done"}
    assert second.frames == 5  # only b was decoded
    assert _mtimes(out / "a") == before_a  # a untouched
    now = {p.name: p.read_bytes() for p in (out / "b").iterdir()}
    assert set(now) == set(good)  # the stale file is gone
    for name, data in good.items():
        if name != "flow.json":
            assert now[name] == data, name
    # another method into the same folder: refused per video, not silently mixed
    third = run_flow_extract(FlowOptions(str(out), (str(a),), method="tvl1"))
    assert third.results[0].status == "failed"
    assert "--overwrite" in third.results[0].message and "method" in third.results[0].message
    assert a.exists() and _mtimes(out / "a") == before_a


def test_names_keep_sub_folders_and_refuse_collisions(tmp_path):
    frames = shifted_frames(n=3)
    write_clip(tmp_path / "in" / "Run" / "x.mkv", frames)
    write_clip(tmp_path / "in" / "Jump" / "x.mkv", frames)
    write_clip(tmp_path / "in" / "x.mkv", frames)
    lone = write_clip(tmp_path / "lone" / "x.mkv", frames)
    report = run_flow_extract(
        FlowOptions(str(tmp_path / "out"), (str(tmp_path / "in"), str(lone)), method="dis")
    )
    by = {r.source: r for r in report.results}
    assert by[str(tmp_path / "in" / "Jump" / "x.mkv")].name == "Jump/x"
    assert by[str(tmp_path / "in" / "Run" / "x.mkv")].name == "Run/x"
    assert by[str(tmp_path / "in" / "x.mkv")].status == "done"
    assert by[str(lone)].status == "failed" and by[str(lone)].name == "x"
    assert "same folder" in by[str(lone)].message
    assert (tmp_path / "out" / "Run" / "x" / "flow.json").is_file()
    meta = json.loads((tmp_path / "out" / "x" / "flow.json").read_text())
    assert meta["source"] == str(tmp_path / "in" / "x.mkv")


def test_a_dataset_layout_is_named_class_slash_video(tmp_path):
    root = tmp_path / "ds"
    write_clip(root / "train" / "walk" / "v1.mkv", shifted_frames(n=3))
    write_clip(root / "val" / "walk" / "v2.mkv", shifted_frames(n=3, seed=2))
    report = run_flow_extract(
        FlowOptions(str(tmp_path / "out"), dataset="folder", data_root=str(root), method="dis")
    )
    assert sorted(r.name for r in report.results) == ["train/walk/v1", "val/walk/v2"]
    assert all(r.status == "done" for r in report.results)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args], cwd=cwd, capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip


def test_a_bad_video_is_one_error_line_and_the_others_go_on(clip, tmp_path):
    path, frames = clip
    other = write_clip(tmp_path / "two.mkv", shifted_frames(n=4, seed=3))
    bad = tmp_path / "bad.mp4"
    bad.write_text("<html>not a video</html>")
    short = write_clip(tmp_path / "still.mkv", frames[:1])
    out = tmp_path / "out"
    done = _run_cli(
        "flow", "extract", str(path), str(bad), str(other), str(short), "-o", str(out),
        "--method", "dis", "--workers", "2", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, done.stderr
    assert "bad.mp4" in errors[0] and "still.mkv" in errors[1] and "at least 2" in errors[1]
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert (report["done"], report["failed"], report["workers"]) == (2, 2, 2)
    # the good ones are complete, and the same as a one-process run gives
    ref = reference_flows(decode_independently(other), "dis")
    for i, flow in enumerate(ref, 1):
        x = (out / "two" / f"flow_x_{i:05d}.jpg").read_bytes()
        assert x == jpeg(documented_quantisation(flow[..., 0]))
    assert json.loads((out / "walk" / "flow.json").read_text())["flows"] == 7
    assert not (out / "bad" / "flow.json").exists()


def test_raft_without_a_gpu_is_one_clear_error():
    import torch

    from ispan_cli.errors import ISpanError
    from ispan_cli.flow.methods import create_method

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: RAFT would run")
    with pytest.raises(ISpanError, match="--method raft runs on a CUDA GPU"):
        create_method("raft")


def test_usage_mistakes(tmp_path, clip):
    from ispan_cli.errors import UsageError

    with pytest.raises(UsageError, match="--rgb"):
        run_flow_extract(FlowOptions(str(tmp_path), (str(clip[0]),), layout="uv", rgb=True))
    with pytest.raises(UsageError, match="not both"):
        run_flow_extract(FlowOptions(str(tmp_path), (str(clip[0]),), dataset="folder"))
    with pytest.raises(UsageError, match="synthetic"):
        run_flow_extract(FlowOptions(str(tmp_path), dataset="synthetic", data_root="x"))


def test_cli_choices_are_the_library_tuples():
    from ispan_cli.commands import flow
    from ispan_cli.data.flow_format import LAYOUTS, METHODS

    assert tuple(m.value for m in flow.FlowMethodName) == METHODS
    assert tuple(m.value for m in flow.FlowLayout) == LAYOUTS


def test_a_workers_opencv_gets_the_cores_the_busy_workers_leave(clip):
    # 2 workers busy: one thread each; the last one at the tail: all the cores; the flows are
    # the same as one call over the frames (pairs are independent)
    import multiprocessing

    from ispan_cli.flow.batch import sharing_cores
    from ispan_cli.flow.methods import create_method
    from ispan_cli.runtime.threads import usable_cores

    _, frames = clip
    method = create_method("dis")
    busy = multiprocessing.get_context("spawn").Value("i", 2)
    before = cv2.getNumThreads()
    seen = []

    def flows(pair):
        seen.append(cv2.getNumThreads())
        return method.flows(pair)

    try:
        run = sharing_cores(flows, busy)
        first = run(frames[:3])
        busy.value = 1
        second = run(frames[2:])
    finally:
        cv2.setNumThreads(before)
    cores = usable_cores()[0]
    assert seen == [max(1, cores // 2)] * 2 + [cores] * (len(frames) - 3)
    assert np.array_equal(np.concatenate([first, second]), reference_flows(frames, "dis"))
