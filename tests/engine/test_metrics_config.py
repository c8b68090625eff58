"""Metrics against brute-force definitions; the TOML config with command-line overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ispan_cli.engine.config import TrainConfig, build_config
from ispan_cli.engine.metrics import video_metrics
from ispan_cli.errors import UsageError


def test_metrics_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 7))
    labels = rng.integers(0, 6, 200)  # class 6 has no videos: left out of the class mean
    m = video_metrics(scores, labels, 7)
    ranks = [sorted(range(7), key=lambda c: -s[c]) for s in scores]
    assert m.top1 == np.mean([r[0] == y for r, y in zip(ranks, labels, strict=True)])
    assert m.top5 == np.mean([y in r[:5] for r, y in zip(ranks, labels, strict=True)])
    per = [np.mean([r[0] == c for r, y in zip(ranks, labels, strict=True) if y == c])
           for c in range(6)]  # fmt: skip
    assert m.mean_class == pytest.approx(np.mean(per))
    assert np.isnan(m.per_class[6]) and m.confusion.sum() == 200
    assert m.confusion[3].sum() == (labels == 3).sum()


def test_toml_then_command_line(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[train]\ndataset = "hmdb51"\nbatch-size = 64\nlr = 0.01\nlr_steps = [0.3]\n')
    cfg = build_config(path, {"lr": 0.02, "epochs": None})
    assert (cfg.dataset, cfg.batch_size, cfg.lr, cfg.lr_steps) == ("hmdb51", 64, 0.02, (0.3,))
    assert cfg.epochs == TrainConfig().epochs
    path.write_text("batch_sise = 3\n")
    with pytest.raises(UsageError, match=r"unknown training setting.*batch_sise"):
        build_config(path, {})
    path.write_text("lr = [\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        build_config(path, {})


def test_paper_defaults() -> None:
    cfg = TrainConfig()
    assert (cfg.momentum, cfg.weight_decay, cfg.segments, cfg.dropout) == (0.9, 5e-4, 8, 0.8)
    assert cfg.use_partial_bn and not cfg.replace(pretrained="none").use_partial_bn
