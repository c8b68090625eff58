"""The synthetic dataset: seeded, balanced, and its boxes hold the target's pixels."""

from __future__ import annotations

import numpy as np

from ispan_cli.data import synthetic


def _yellow(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 200) & (g > 170) & (b < 90)


def test_boxes_hold_the_target_and_only_it_is_yellow() -> None:
    for index in range(10):
        clip = synthetic.make_clip(1, "train", index)
        assert clip.label == index % len(synthetic.LABELS)
        frames = clip.render(range(0, 32, 5))
        for t, frame in zip(range(0, 32, 5), frames, strict=True):
            ys, xs = np.nonzero(_yellow(frame))
            x0, y0, x1, y1 = clip.box(t)
            assert len(xs) > 40  # the target is drawn, on top of everything
            # the texture never reaches the target colour, distractors are never yellow
            assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1
            assert ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def test_seeded_and_subsets_differ() -> None:
    a = synthetic.make_clip(1, "train", 3).render([0, 9])
    assert np.array_equal(a, synthetic.make_clip(1, "train", 3).render([0, 9]))
    assert not np.array_equal(a, synthetic.make_clip(1, "val", 3).render([0, 9]))
    assert not np.array_equal(a, synthetic.make_clip(2, "train", 3).render([0, 9]))
    assert all(label.startswith("synthetic-") for label in synthetic.LABELS)
