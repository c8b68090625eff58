"""Flow for training: both layouts read back, L flows stacked x/y interleaved, TSN's sampling,
the flip that negates x, the augmentation's shared crop, the normalisation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ispan_cli.data.flow_format import detect_layout
from ispan_cli.data.flow_frames import (
    FlowAugment,
    centre_crop_flow,
    find_flow,
    flip_flow,
    normalise_flow,
    open_flow,
    segment_starts,
    stack_flows,
)
from ispan_cli.errors import ISpanError
from ispan_cli.flow.batch import FlowOptions, run_flow_extract
from tests.flow.clips import shifted_frames, write_clip


def _hand_made(root, layout: str, count: int = 7, h: int = 6, w: int = 8):
    """Flow images whose every pixel says which flow and axis it is: x = 10*i, y = 10*i + 5
    (PNG-exact values survive JPEG only approximately, so values are flat per image)."""
    for i in range(1, count + 1):
        x = np.full((h, w), 10 * i, np.uint8)
        y = np.full((h, w), 10 * i + 5, np.uint8)
        if layout == "rawframes":
            (root / "Cls" / "vid").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "Cls" / "vid" / f"flow_x_{i:05d}.jpg"), x)
            cv2.imwrite(str(root / "Cls" / "vid" / f"flow_y_{i:05d}.jpg"), y)
        else:  # the shared archives: flat names
            for axis, img in (("u", x), ("v", y)):
                (root / axis / "vid").mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / axis / "vid" / f"frame{i:06d}.jpg"), img)


@pytest.mark.parametrize("layout", ["rawframes", "uv"])
def test_both_layouts_are_found_counted_and_stacked_interleaved(tmp_path, layout):
    _hand_made(tmp_path, layout)
    assert detect_layout(tmp_path) == layout
    flow = find_flow(tmp_path, "/data/UCF-101/Cls/vid.avi", "/data/UCF-101")
    assert (flow.layout, flow.count, flow.meta) == (layout, 7, None)
    stacks = stack_flows(flow, [0, 4], length=5)  # the second runs past the end: clamped
    assert stacks.shape == (2, 6, 8, 10)
    got = np.round(stacks[:, 0, 0, :].astype(float) / 5) * 5  # flat images: JPEG is exact-ish
    want = [[10, 15, 20, 25, 30, 35, 40, 45, 50, 55], [50, 55, 60, 65, 70, 75, 70, 75, 70, 75]]
    assert got.tolist() == want


def test_our_extracted_flow_reads_back_through_its_record(tmp_path):
    frames = shifted_frames(n=7)
    write_clip(tmp_path / "in" / "Walk" / "v_Walk_g01_c01.mkv", frames)
    for layout in ("rawframes", "uv"):
        out = tmp_path / layout
        run_flow_extract(
            FlowOptions(
                str(out),
                dataset="folder",
                data_root=str(tmp_path / "in"),
                method="dis",
                layout=layout,
            )
        )  # a folder dataset without train/ val/: named <class>/<video> under the root
        flow = find_flow(out, tmp_path / "in" / "Walk" / "v_Walk_g01_c01.mkv", tmp_path / "in")
        assert flow.meta is not None and flow.meta.spec.layout == layout
        assert flow.count == 6 and flow.meta.width == 64
        x, y = flow.files(5)
        direct = np.stack(
            [cv2.imread(str(x), cv2.IMREAD_GRAYSCALE), cv2.imread(str(y), cv2.IMREAD_GRAYSCALE)],
            -1,
        )
        assert np.array_equal(flow.read([5])[0], direct)
    with pytest.raises(ISpanError, match="no flow for"):
        find_flow(tmp_path / "uv", "elsewhere/Other/missing.mkv")


def test_a_half_written_folder_is_refused(tmp_path):
    _hand_made(tmp_path, "rawframes")
    (tmp_path / "Cls" / "vid" / "flow_y_00007.jpg").unlink()
    # no record: the x files are counted; the missing y file is named when it is read
    flow = open_flow(tmp_path, "Cls/vid")
    with pytest.raises(ISpanError, match=r"flow_y_00007\.jpg"):
        flow.read([6])


def test_segment_starts_follow_tsn():
    # TSN test sampling: tick = (n - L + 1) / K, start_k = int(tick / 2 + tick * k)
    assert segment_starts(30, 3, 5).tolist() == [int(26 / 3 / 2 + 26 / 3 * k) for k in range(3)]
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = segment_starts(30, 3, 5, rng)
        part = 26 // 3
        assert all(k * part <= v < (k + 1) * part for k, v in enumerate(s.tolist()))
    assert segment_starts(3, 4, 5).tolist() == [0, 0, 0, 0]  # shorter than L


def test_flip_mirrors_and_negates_x_only():
    rng = np.random.default_rng(1)
    stacks = rng.integers(0, 256, (2, 4, 6, 10), dtype=np.uint8)
    flipped = flip_flow(stacks)
    assert np.array_equal(flipped[..., 0::2], 255 - stacks[:, :, ::-1, 0::2])  # x: negated
    assert np.array_equal(flipped[..., 1::2], stacks[:, :, ::-1, 1::2])  # y: mirrored only
    assert np.array_equal(flip_flow(flipped), stacks)
    # in pixels: a rightward motion of +d becomes -d (to within one quantisation level)
    from ispan_cli.data.flow_format import dequantise, quantise

    q = quantise(np.array([3.0]))
    assert abs(dequantise(255 - q)[0] + 3.0) <= 40 / 255


def test_normalisation_is_mean_128_std_128():
    stacks = np.array([[[[0, 128, 255, 64]]]], np.uint8)  # (1, 1, 1, 4)
    out = normalise_flow(stacks)
    assert out.shape == (1, 4, 1, 1)
    assert out[0, :, 0, 0].tolist() == [-1.0, 0.0, 127 / 128, -0.5]


def test_augment_applies_one_crop_and_one_flip_to_every_channel():
    # channel c is one image plus 10 c: after the augmentation every y channel must still be
    # that one (cropped, resized, maybe mirrored) image Y plus 10 c, and every x channel either
    # Y + 10 c (no flip) or 255 - (Y + 10 c) (flip: negated): the same box and flip for all
    rng = np.random.default_rng(0)
    base = rng.integers(0, 100, (40, 60), dtype=np.uint8)
    stacks = np.stack([base + 10 * c for c in range(10)], -1)[None].repeat(3, 0)  # (3,40,60,10)
    aug = FlowAugment(crop=24, resize=None)
    flips = 0
    tol = 1.01 / 128  # one grey level of rounding in the resize
    for seed in range(12):
        out = aug(stacks, np.random.default_rng(seed))  # (3, 10, 24, 24)
        assert out.shape == (3, 10, 24, 24) and out.dtype == np.float32
        q = out * 128 + 128  # back to grey levels
        y_img = q[:, 1] - 10
        flipped = bool(np.abs(q[:, 0] - (255 - y_img)).max() < 1.01)
        flips += flipped
        for c in range(10):
            want = y_img + 10 * c
            if c % 2 == 0 and flipped:
                want = 255 - want
            assert np.abs(q[:, c] - want).max() / 128 <= tol, (seed, c)
        # the same crop on every segment (identical input segments give identical output)
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    assert 0 < flips < 12  # both branches were exercised


def test_centre_crop_is_the_middle():
    stacks = np.arange(1 * 10 * 12 * 2, dtype=np.uint8).reshape(1, 10, 12, 2)
    out = centre_crop_flow(stacks, crop=4, resize=None)
    assert np.array_equal(out, normalise_flow(stacks[:, 3:7, 4:8]))
