"""The learning check: on the synthetic dataset a tiny ISTPAN trained by `ispan train` is far
above chance, and its attention puts more mass inside the target's box than a uniform map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ispan_cli.data import synthetic
from ispan_cli.nn import load_model, read_config
from ispan_cli.video.preprocess import preprocess, spec_from_config
from ispan_cli.video.sampling import TSNSampler
from tests.engine.runs import ispan

VAL = 60
# The learning check's training recipe (TrainConfig fields), shared with
# benchmarks/attention_in_box.py so the figures there are this test's.
RECIPE = dict(dataset="synthetic", arch="istpan_tiny", pretrained="none", segments=4, epochs=6,
              batch_size=16, lr=0.005, warmup_epochs=0.5, dropout=0.0, synthetic_train=400,
              synthetic_val=VAL, workers=1, device="cpu")  # fmt: skip


def _box_overlap(box, spec, grid: int) -> np.ndarray:
    """(grid, grid) fraction of each feature cell covered by ``box`` (frame pixels) after the
    evaluation preprocessing (scale to ``spec.resize``, centre crop ``spec.crop``)."""
    size = synthetic.SyntheticSpec().size
    scale = spec.resize / size
    offset = round((spec.resize - spec.crop) / 2)
    x0, y0, x1, y1 = (v * scale - offset for v in box)
    cell = spec.crop / grid
    edges = np.arange(grid + 1) * cell
    ox = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None) / cell
    oy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None) / cell
    return oy[:, None] * ox[None, :]


def score_run(best: Path, val: int = VAL) -> dict:
    """Accuracy and attention mass in the target's box on ``val`` synthetic validation clips,
    scored independently of the trainer: for the fused map and each pyramid level's own map
    (``level_j``), against what a uniform map would put there (``uniform``)."""
    config, doc = read_config(best)
    spec = spec_from_config(config, doc)
    model = load_model(best)
    k = config.num_segments
    correct, uniform, inside = 0, [], {}
    for i in range(val):
        clip = synthetic.make_clip(1, "val", i)
        times = np.arange(clip.spec.frames) / clip.spec.fps
        idx = TSNSampler(k).sample(times).indices[0]
        x = torch.from_numpy(preprocess(clip.render(idx), spec))  # (1, K, 3, S, S)
        with torch.no_grad():
            logits, maps = model.forward_with_attention(x)
        correct += int(logits.argmax(1).item() == clip.label)
        # (K, H, W) attention mass per position, all rows
        masses = {"fused": maps.fused[0].abs().sum(0)}
        masses.update({f"level_{j}": m[0].sum(0) for j, m in enumerate(maps.levels)})
        for f, t in enumerate(idx):
            overlap = _box_overlap(clip.box(int(t)), spec, maps.fused.shape[-1])
            uniform.append(float(overlap.mean()))
            for name, mass in masses.items():
                share = mass[f].numpy() / mass[f].sum().item()
                inside.setdefault(name, []).append(float((share * overlap).sum()))
    out = {"accuracy": correct / val, "uniform": float(np.mean(uniform))}
    out.update({name: float(np.mean(v)) for name, v in inside.items()})
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Trains once (about 1-2 minutes on 2 cores), then scores VAL clips independently."""
    run = tmp_path_factory.mktemp("learn") / "run"
    options = [a for k, v in RECIPE.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    ispan("train", *options, "--output", str(run), "--quiet", timeout=170)
    return score_run(run / "best")


@pytest.mark.slow
def test_tiny_istpan_learns_far_above_chance(trained: dict) -> None:
    chance = 1 / len(synthetic.LABELS)
    assert trained["accuracy"] >= 0.6, f"accuracy {trained['accuracy']:.2f}, chance {chance:.2f}"


@pytest.mark.slow
def test_attention_mass_inside_the_object_box_exceeds_uniform(trained: dict) -> None:
    assert trained["fused"] > 1.2 * trained["uniform"], (trained["fused"], trained["uniform"])
