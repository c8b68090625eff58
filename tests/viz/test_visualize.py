"""`ispan visualize` end to end on real encoded videos with the bundled model."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.nn import load_model, read_config
from ispan_cli.video.preprocess import preprocess, spec_from_config
from tests.export.conftest import DEFAULT_DIR, MODEL
from tests.video.videogen import write_pattern_video

runner = CliRunner()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 170x128: short side 128 = the model's resize, so an independent decode sees the same pixels
    root = tmp_path_factory.mktemp("viz")
    return write_pattern_video(root / "clip.mp4", "libx264", 50, width=170, height=128)


def _decode_all(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _visualize(*args) -> dict:
    args = args if "--model" in args else ("--model", MODEL, *args)
    result = runner.invoke(app, ["visualize", *map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _mass(maps: torch.Tensor) -> np.ndarray:
    """Independent: column sums of each (d, K*h*w) attention matrix, normalised to sum to 1."""
    b, d, k, h, w = maps.shape
    cols = maps.double().reshape(b, d, k * h * w).sum(dim=1)  # (B, K*h*w)
    return (cols / cols.sum(dim=1, keepdim=True)).reshape(b, k, h, w).numpy()


def test_video_decodes_with_the_right_frames_size_and_codec(video, tmp_path):
    out = tmp_path / "out.mp4"
    report = _visualize(video, "-o", out)
    assert report["frames"] == 8
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8
    assert frames[0].shape == (128, 170, 3)  # the input's size and aspect ratio


def test_npz_maps_equal_forward_with_attention_on_the_same_frames(video, tmp_path):
    maps_path = tmp_path / "maps.npz"
    _visualize(video, "-o", tmp_path / "o.mp4", "--maps-out", maps_path)
    maps = np.load(maps_path)
    frames = _decode_all(video)
    n = len(frames)
    want_idx = [int(n / 8 * i + n / 16) for i in range(8)]  # TSN centres, computed here
    assert maps["frame_indices"].tolist() == want_idx
    np.testing.assert_allclose(maps["timestamps"], np.array(want_idx) / 25, atol=1e-6)
    config, doc = read_config(DEFAULT_DIR)
    x = torch.from_numpy(preprocess(frames[want_idx], spec_from_config(config, doc)))
    with torch.no_grad():
        logits, attention = load_model(DEFAULT_DIR).forward_with_attention(x)
    assert maps["fused"].shape == (8, 7, 7)
    np.testing.assert_allclose(maps["fused"], _mass(attention.fused)[0], atol=1e-6)
    for j, level in enumerate(attention.levels):
        np.testing.assert_allclose(maps[f"level_{j}"], _mass(level)[0], atol=1e-6)
    assert "level_3" not in maps
    np.testing.assert_allclose(maps["share"], _mass(attention.fused)[0].sum((1, 2)), atol=1e-6)
    np.testing.assert_allclose(maps["probs"], logits.softmax(-1)[0].numpy(), atol=1e-6)
    # 170x128 -> resize 128 keeps the size; the 112 centre crop starts at round(58/2), 8
    np.testing.assert_allclose(maps["crop_box"], [29, 8, 141, 120])
    assert maps["labels"].tolist() == list(config.labels)


def test_onnx_with_attention_gives_the_same_maps(video, exported, tmp_path):
    torch_maps, onnx_maps = tmp_path / "t.npz", tmp_path / "o.npz"
    _visualize(video, "-o", tmp_path / "t.mp4", "--maps-out", torch_maps)
    report = _visualize(
        video,
        "-o",
        tmp_path / "o.mp4",
        "--maps-out",
        onnx_maps,
        "--runtime",
        "onnx",
        "--model",
        exported["attention"],
    )
    assert report["frames"] == 8
    a, b = np.load(torch_maps), np.load(onnx_maps)
    assert set(a.files) == set(b.files)
    for key in a.files:
        if a[key].dtype.kind in "fi":
            np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
        else:
            assert a[key].tolist() == b[key].tolist()


def test_onnx_without_attention_outputs_is_refused(video, exported, tmp_path):
    result = runner.invoke(
        app,
        [
            "visualize",
            str(video),
            "-o",
            str(tmp_path / "x.mp4"),
            "--runtime",
            "onnx",
            "--model",
            str(exported["plain"]),
        ],
    )
    assert result.exit_code == 1
    assert "--with-attention" in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_level_all_puts_the_levels_side_by_side_and_png_sheet(video, tmp_path):
    out, sheet = tmp_path / "all.mp4", tmp_path / "sheet.png"
    report = _visualize(
        video,
        "-o",
        out,
        "--level",
        "all",
        "--png",
        sheet,
        "--alpha",
        "0.7",
        "--colormap",
        "inferno",
    )
    assert (report["width"], report["height"]) == (4 * 170, 128)
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] >= 2 * 160  # 8 frames wrap onto 4 lines of 2


def test_level_out_of_range_is_a_usage_error(video, tmp_path):
    result = runner.invoke(
        app, ["visualize", str(video), "-o", str(tmp_path / "x.mp4"), "--level", "3"]
    )
    assert result.exit_code == 2
    assert "2 (layer4)" in result.stderr


def test_heatmap_follows_the_attention(tmp_path):
    """Where the map is high the blended pixels take the colormap's hot colour."""
    from ispan_cli.viz.render import overlay

    frame = np.full((100, 100, 3), 128, np.uint8)
    heat = np.zeros((7, 7), np.float32)
    heat[0, 0] = 1.0  # all attention in the top-left cell
    out = overlay(frame, heat, (0, 0, 100, 100), alpha=1.0, colormap="jet")
    hot, cold = out[3, 3].astype(int), out[95, 95].astype(int)
    assert hot[0] > 100 and hot[2] < 60  # jet's top end is red
    assert cold[2] > 100 and cold[0] < 60  # and its bottom end is blue


def test_windows_add_a_leading_axis(tmp_path):
    long = write_pattern_video(tmp_path / "long.mp4", "libx264", 100, width=170, height=128)
    maps_path = tmp_path / "w.npz"
    report = _visualize(
        long,
        "-o",
        tmp_path / "w.mp4",
        "--window",
        "1.6",
        "--stride",
        "0.8",
        "--segments",
        "4",
        "--maps-out",
        maps_path,
    )
    windows = len(report["views"])
    assert windows == 4  # 4 s of video: windows start at 0, 0.8, 1.6 and 2.4 (ends at 4.0)
    assert report["frames"] == windows * 4
    maps = np.load(maps_path)
    assert maps["fused"].shape == (windows, 4, 7, 7)
    assert maps["frame_indices"].shape == (windows, 4)
    assert maps["window_spans"].shape == (windows, 2)
    np.testing.assert_allclose(maps["fused"].sum(axis=(1, 2, 3)), 1.0, atol=1e-5)
    with av.open(str(tmp_path / "w.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == windows * 4
