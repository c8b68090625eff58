"""Sampler properties: coverage, order, determinism, the short-video policy, timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.video import (
    DenseSampler,
    TSNSampler,
    UniformSampler,
    VideoTooShortError,
    WindowSampler,
)


def _times(n: int, fps: float = 25.0) -> np.ndarray:
    return np.arange(n) / fps


@pytest.mark.parametrize("n", [8, 9, 50, 301, 1000])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_tsn_centre_is_one_frame_per_segment_at_its_centre(n, k):
    s = TSNSampler(k).sample(_times(n))
    idx = s.indices[0]
    assert s.indices.shape == (1, k) and s.method == "tsn-centre"
    for seg, i in enumerate(idx):
        lo, hi = n * seg / k, n * (seg + 1) / k
        # frame i is on screen during [i, i + 1): it is the frame shown at the segment's centre
        assert i <= (lo + hi) / 2 < i + 1
    assert not s.repeated
    np.testing.assert_allclose(s.timestamps[0], idx / 25.0)
    np.testing.assert_allclose(s.spans, [[0.0, n / 25.0]])


@pytest.mark.parametrize("n", [8, 50, 1000])
def test_tsn_random_stays_in_segments_is_seeded_and_varies(n):
    k = 8
    a = TSNSampler(k, mode="random", seed=1).sample(_times(n)).indices[0]
    b = TSNSampler(k, mode="random", seed=1).sample(_times(n)).indices[0]
    np.testing.assert_array_equal(a, b)
    for seg, i in enumerate(a):
        assert n * seg / k - 1 < i < n * (seg + 1) / k
    draws = {tuple(TSNSampler(k, mode="random", seed=s).sample(_times(n)).indices[0])
             for s in range(20)}  # fmt: skip
    assert len(draws) > 1 if n > k else len(draws) == 1


def test_short_video_repeats_in_order_and_says_so():
    s = TSNSampler(8).sample(_times(3))
    assert s.indices[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert s.repeated
    with pytest.raises(VideoTooShortError, match="3 frames"):
        TSNSampler(8, allow_repeat=False).sample(_times(3))
    single = UniformSampler(4).sample(_times(1))
    assert single.indices.tolist() == [[0, 0, 0, 0]] and single.repeated


@pytest.mark.parametrize("n,count", [(100, 5), (7, 7), (250, 16)])
def test_uniform_spans_first_to_last(n, count):
    idx = UniformSampler(count).sample(_times(n)).indices[0]
    assert idx[0] == 0 and idx[-1] == n - 1 and len(idx) == count
    assert np.all(np.diff(idx) > 0)
    gaps = np.diff(idx)
    assert gaps.max() - gaps.min() <= 1


def test_dense_clips_have_the_stride_and_spread_over_the_video():
    s = DenseSampler(clip_len=8, stride=4, num_clips=3).sample(_times(300))
    assert s.indices.shape == (3, 8)
    assert np.all(np.diff(s.indices, axis=1) == 4)
    assert s.indices[0, 0] == 0 and s.indices[-1, -1] == 299
    one = DenseSampler(clip_len=8, stride=2).sample(_times(101)).indices[0]
    assert one[0] + one[-1] in (99, 100, 101)  # centred
    r1 = DenseSampler(8, 2, 4, mode="random", seed=3).sample(_times(500)).indices
    r2 = DenseSampler(8, 2, 4, mode="random", seed=3).sample(_times(500)).indices
    np.testing.assert_array_equal(r1, r2)
    assert np.all(np.diff(r1[:, 0]) >= 0) and r1.max() < 500


def test_dense_clip_longer_than_video_repeats_the_last_frame():
    s = DenseSampler(clip_len=8, stride=4).sample(_times(10))
    assert s.indices[0].tolist() == [0, 4, 8, 9, 9, 9, 9, 9] and s.repeated


def test_windows_cover_the_video_by_seconds():
    times = _times(250)  # 10 s
    s = WindowSampler(window=2.0, stride=1.5, frames=4).sample(times)
    starts, ends = s.spans[:, 0], s.spans[:, 1]
    assert starts[0] == 0 and ends[-1] == pytest.approx(10.0)
    assert np.all(ends - starts == pytest.approx(2.0))
    assert np.all(starts[1:] - starts[:-1] <= 1.5 + 1e-9)  # no gaps between windows
    for (start, end), row in zip(s.spans, s.indices, strict=True):
        assert np.all((times[row] >= start - 1e-9) & (times[row] < end))
        assert len(set(row.tolist())) == 4
    short = WindowSampler(window=5.0, stride=1.0, frames=4).sample(_times(50))  # 2 s video
    assert short.spans.tolist() == [[0.0, 2.0]]


def test_bad_arguments_say_what_to_change():
    with pytest.raises(ISpanError, match="segments"):
        TSNSampler(0).sample(_times(10))
    with pytest.raises(ISpanError, match="mode"):
        TSNSampler(4, mode="middle").sample(_times(10))
    with pytest.raises(ISpanError, match="no frames"):
        TSNSampler(4).sample(_times(0))
    with pytest.raises(ISpanError, match="positive"):
        WindowSampler(window=0, stride=1).sample(_times(10))


def test_a_stride_too_small_for_the_video_is_one_clear_error():
    from ispan_cli.video.sampling import MAX_WINDOWS, WindowSampler

    times = np.arange(165) / 25  # 6.6 s
    with pytest.raises(ISpanError, match=r"--stride 1e-12 s makes .* windows .* at least"):
        WindowSampler(1.0, 1e-12).sample(times)  # used to try to allocate 40 TiB
    fine = WindowSampler(1.0, (6.6 - 1.0) / (MAX_WINDOWS - 1) * 2).sample(times)
    assert len(fine.indices) <= MAX_WINDOWS
