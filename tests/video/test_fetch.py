"""The adaptive fetch: same pixels as decoding everything, and a plan never worse than either
fixed strategy under its own cost model."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ispan_cli.video import WindowSampler, iter_views, open_video, sample_video
from ispan_cli.video.frame_index import FrameIndex, plan_fetch

from .conftest import CASES


def _decode_all(path, size=None) -> list[np.ndarray]:
    """Every frame in presentation order with plain PyAV: the reference."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if size is None:
                out.append(frame.to_ndarray(format="rgb24"))
            else:
                out.append(
                    frame.reformat(size[0], size[1], "rgb24", interpolation="AREA").to_ndarray()
                )
    return out


@pytest.mark.parametrize("case", CASES[:7], ids=[c.name for c in CASES[:7]])
def test_adaptive_fetch_equals_decode_all(case, case_video):
    path = case_video(case)
    reference = _decode_all(path)
    wanted = [140, 2, 3, 4, 60, 61, 100, 0, 149, 25, 24, 23]
    with open_video(path, "pyav") as reader:
        frames = reader.read(wanted)
    for got, i in zip(frames, wanted, strict=True):
        np.testing.assert_array_equal(got, reference[i])


def test_adaptive_fetch_scaled_equals_decode_all_scaled(case_video):
    path = case_video(CASES[0])
    reference = _decode_all(path, size=(64, 48))
    wanted = [0, 1, 90, 91, 149]
    with open_video(path, "pyav") as reader:
        frames = reader.read(wanted, short_side=48)
    for got, i in zip(frames, wanted, strict=True):
        np.testing.assert_array_equal(got, reference[i])


def test_iter_views_streams_the_same_frames_as_sampling_at_once(case_video):
    path = case_video(CASES[1])
    sampler = WindowSampler(window=1.0, stride=0.5, frames=4)
    whole = sample_video(path, sampler)
    with open_video(path) as reader:
        views = list(iter_views(reader, whole.sampling))
    assert [v for v, _ in views] == list(range(len(whole.sampling.indices)))
    for (_, frames), expected in zip(views, whole.frames, strict=True):
        np.testing.assert_array_equal(frames, expected)


def _costs(wanted, keys, seek_cost):
    """Frames decoded + seek penalties for: the plan, decode-all-forward, seek-per-frame."""
    plan = plan_fetch(wanted, keys, -1, seek_cost)
    position, cost = -1, 0
    for run in plan:
        if run.seek_to is not None:
            cost += seek_cost
            position = run.seek_to - 1
        assert run.stop == max(run.wanted) and position < min(run.wanted)
        cost += run.stop - position
        position = run.stop
    targets = sorted(set(wanted))
    forward = targets[-1] + 1
    per_frame = sum(w - keys[keys <= w].max() + 1 + seek_cost for w in targets)
    return cost, forward, per_frame, plan


@pytest.mark.parametrize("seed", range(40))
def test_plan_is_never_worse_than_a_fixed_strategy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 3000))
    gop = int(rng.integers(1, 400))
    keys = np.arange(0, n, gop)
    wanted = rng.integers(0, n, int(rng.integers(1, 12))).tolist()
    cost, forward, per_frame, plan = _costs(wanted, keys, seek_cost=8)
    assert cost <= forward and cost <= per_frame
    covered = [w for run in plan for w in run.wanted]
    assert covered == sorted(set(wanted))
    for run in plan:  # every seek goes to the last keyframe at or before the run's first frame
        if run.seek_to is not None:
            assert run.seek_to == keys[keys <= run.wanted[0]].max()


def test_plan_decodes_forward_when_near_and_seeks_when_far():
    keys = np.arange(0, 1000, 100)
    near = plan_fetch([10, 12, 30], keys, -1)
    assert [(r.seek_to, r.wanted) for r in near] == [(None, (10, 12, 30))]
    far = plan_fetch([10, 505, 990], keys, -1)
    assert [(r.seek_to, r.wanted) for r in far] == [(None, (10,)), (500, (505,)), (900, (990,))]
    # the keyframe before 150 is behind the decoder (at 120): keep decoding, do not seek
    assert plan_fetch([150], keys, 120)[0].seek_to is None
    # going backwards always seeks
    assert plan_fetch([5], keys, 120)[0].seek_to == 0


def test_frame_index_orders_packets_and_maps_times():
    from fractions import Fraction

    # decode order with B-frames: I P B B; duplicate timestamps are dropped
    index = FrameIndex.from_packets(
        [0, 3, 1, 2, 2], [True, False, False, False, False], Fraction(1, 10)
    )
    assert index.pts.tolist() == [0, 1, 2, 3]
    assert index.keyframe.tolist() == [True, False, False, False]
    np.testing.assert_allclose(index.times(), [0.0, 0.1, 0.2, 0.3])
    assert index.lookup(2) == 2 and index.lookup(7) is None
    assert index.duration() == pytest.approx(0.4)
