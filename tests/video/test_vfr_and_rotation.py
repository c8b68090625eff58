"""Variable frame rate (frames found by timestamp) and rotated phone video (display matrix)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ispan_cli.video import TSNSampler, WindowSampler, open_video, probe, sample_video

from .conftest import _x264
from .videogen import marker_corner, read_index


def test_vfr_is_detected_and_timestamps_are_the_written_ones(vfr_video):
    path, pts = vfr_video
    info = probe(path)
    assert info.variable_frame_rate is True
    assert info.num_frames == len(pts)
    with open_video(path) as reader:
        np.testing.assert_allclose(reader.frame_times(), np.array(pts) / 1000.0, atol=1e-9)
        # times outside the video clip to its first and last frame
        assert reader.index_at(-1.0) == 0 and reader.index_at(1e6) == len(pts) - 1


def test_vfr_frames_by_timestamp(vfr_video):
    path, pts = vfr_video
    seconds = np.array(pts) / 1000.0
    # a time inside each frame's display interval, and exactly on its timestamp
    queries = [(t + (seconds[i + 1] - t) / 2, i) for i, t in enumerate(seconds[:-1])]
    queries += [(t, i) for i, t in enumerate(seconds)]
    rng = np.random.default_rng(0)
    picked = [queries[j] for j in rng.permutation(len(queries))[:30]]
    with open_video(path) as reader:
        frames, indices = reader.read_at([t for t, _ in picked])
    assert indices == [i for _, i in picked]
    assert [read_index(f) for f in frames] == indices


def test_vfr_windows_follow_real_time(vfr_video):
    path, pts = vfr_video
    seconds = np.array(pts) / 1000.0
    sampled = sample_video(path, WindowSampler(window=1.0, stride=0.5, frames=4))
    s = sampled.sampling
    for (start, end), row, times, frames in zip(s.spans, s.indices, s.timestamps, sampled.frames,
                                                strict=True):  # fmt: skip
        inside = np.flatnonzero((seconds >= start - 1e-9) & (seconds < end - 1e-9))
        assert set(row.tolist()) <= set(inside.tolist())
        np.testing.assert_allclose(times, seconds[row])
        assert [read_index(f) for f in frames] == row.tolist()
    assert s.spans[0, 0] == 0.0 and s.spans[-1, 1] == pytest.approx(sampled.info.duration)


ROTATIONS = {
    # display-matrix angle written (counter-clockwise, FFmpeg's convention) ->
    # (clockwise turn a player applies, corner where the top-left marker ends up)
    -90: (90, "tr"),
    90: (270, "bl"),
    180: (180, "br"),
}


@pytest.mark.parametrize("written", sorted(ROTATIONS))
def test_rotated_video_is_returned_upright(written, make_video):
    cw, corner = ROTATIONS[written]
    path = make_video(
        f"rot{written}", "libx264", "mp4", num_frames=30, width=96, height=64,
        rotation=written, options=_x264(),
    )  # fmt: skip
    info = probe(path)
    assert info.rotation == cw
    assert (info.coded_width, info.coded_height) == (96, 64)
    expected_size = (64, 96) if cw in (90, 270) else (96, 64)
    assert (info.width, info.height) == expected_size
    with open_video(path) as reader:
        frames = reader.read([0, 17, 29])
    assert frames.shape[1:3] == (expected_size[1], expected_size[0])
    assert all(marker_corner(f) == corner for f in frames)
    # turning it back gives the encoded picture, pattern and all
    upright_back = [np.rot90(f, k=cw // 90) for f in frames]
    assert [read_index(f) for f in upright_back] == [0, 17, 29]

    # OpenCV applies the display matrix independently (CAP_PROP_ORIENTATION_AUTO): same picture
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    ref = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    assert ref.shape == frames[0].shape
    assert np.abs(ref.astype(int) - frames[0].astype(int)).mean() < 3


def test_rotated_video_opencv_backend_agrees(make_video):
    path = make_video(
        "rot-90", "libx264", "mp4", num_frames=30, width=96, height=64, rotation=-90,
        options=_x264(),
    )  # fmt: skip
    with open_video(path, "opencv") as reader:
        info = reader.info()
        frames = reader.read([3, 20])
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    assert [marker_corner(f) for f in frames] == ["tr", "tr"]
    assert [read_index(np.rot90(f, k=1)) for f in frames] == [3, 20]


def test_wrong_header_count_is_counted_and_reported(make_video, tmp_path):
    import struct

    src = make_video("count-avi", "mpeg4", "avi", num_frames=60)
    data = bytearray(src.read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32)):  # dwTotalFrames, dwLength
        at = data.find(tag) + 8 + offset
        data[at : at + 4] = struct.pack("<I", 500)
    lying = tmp_path / "lying.avi"
    lying.write_bytes(bytes(data))
    info = probe(lying)
    assert info.container_frames == 500
    assert info.num_frames == 60 and info.frame_count_source == "counted"
    assert info.warnings and "500" in info.warnings[0]
    sampled = sample_video(lying, TSNSampler(6))
    assert [read_index(f) for f in sampled.frames[0]] == sampled.sampling.indices[0].tolist()
    assert sampled.sampling.indices.max() < 60
