"""Recipes by situation (explicit settings win, every value says where it came from) and
--lr auto (the range test's choice, deterministic, and training afterwards exactly as with
--lr <the choice>)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ispan_cli.engine import lr_find
from ispan_cli.engine.config import build_config
from ispan_cli.engine.recipes import RECIPES, describe
from ispan_cli.errors import UsageError


def test_recipe_by_situation_and_explicit_settings_win(tmp_path: Path) -> None:
    scratch = build_config(None, {"arch": "istpan_tiny", "pretrained": "none"})
    small = RECIPES["scratch-small"].values
    assert (scratch.recipe, scratch.lr, scratch.dropout) == ("scratch-small", small["lr"],
                                                              small["dropout"])  # fmt: skip
    assert scratch.origins["lr"] == "recipe scratch-small"
    assert scratch.origins["arch"] == "command line"
    large = build_config(None, {"arch": "istpan_resnet50", "pretrained": "none"})
    assert large.recipe == "scratch-large" and large.lr == RECIPES["scratch-large"].values["lr"]
    tuned = build_config(None, {"arch": "istpan_tiny"})  # pretrained: imagenet by default
    assert (tuned.recipe, tuned.lr, tuned.dropout) == ("finetune", 0.001, 0.8)
    init = build_config(None, {"pretrained": "none", "init_from": "some-model"})
    assert init.recipe == "finetune"
    toml = tmp_path / "run.toml"
    toml.write_text("dropout = 0.1\n")
    mine = build_config(toml, {"arch": "istpan_tiny", "pretrained": "none", "lr": "0.3"})
    assert (mine.lr, mine.dropout) == (0.3, 0.1)
    assert mine.origins["lr"] == "command line" and mine.origins["dropout"] == f"--config {toml}"
    assert mine.origins["warmup_epochs"] == "recipe scratch-small"
    text = describe(mine)
    assert "lr 0.3 (command line)" in text and f"dropout 0.1 (--config {toml})" in text
    assert build_config(None, {"lr": "auto"}).lr_find
    with pytest.raises(UsageError, match="lr must be a number or auto"):
        build_config(None, {"lr": "fast"})


def test_range_test_choice_on_a_known_curve() -> None:
    lrs = lr_find.rates()
    assert lrs[0] == pytest.approx(lr_find.START) and lrs[-1] == pytest.approx(lr_find.END)
    # a loss whose minimum is at lr = 0.1, rising steeply after it
    losses = [2.0 - math.exp(-((math.log10(lr) + 1) ** 2)) for lr in lrs]
    test = lr_find.choose(lrs, losses)
    # the smoothed curve lags the raw one by a few steps; a tenth of its minimum's rate
    assert 0.1 / 10 <= test.chosen <= 0.1 / 10 * 10 ** (6 * 5 / 59)
    assert not lr_find.diverged(lr_find.smooth(losses))
    assert lr_find.diverged(lr_find.smooth([1.0, 1.0, 100.0, 1000.0]))


SETTINGS = {"dataset": "synthetic", "arch": "istpan_tiny", "pretrained": "none", "segments": 2,
            "input_size": 64, "batch_size": 8, "dropout": 0.3, "workers": 0, "device": "cpu",
            "synthetic_train": 16, "synthetic_val": 4, "epochs": 1, "precise_bn": 0, "seed": 4,
            "deterministic": True}  # fmt: skip


@pytest.mark.slow  # three runs, one of them 60 range-test steps: minutes on a busy machine
def test_lr_auto_is_deterministic_and_then_trains_as_the_choice(tmp_path: Path) -> None:
    from ispan_cli.engine.launch import TrainOptions, run_training
    from tests.engine.runs import weights

    runs = []
    for name, lr in (("auto-a", "auto"), ("auto-b", "auto")):
        out = tmp_path / name
        run_training(TrainOptions(settings={**SETTINGS, "lr": lr, "output": str(out)}))
        runs.append(out)
    chosen = [json.loads((r / "best" / "config.json").read_text())["training"]["lr"] for r in runs]
    assert chosen[0] == chosen[1] and lr_find.START < chosen[0] < lr_find.END
    assert (runs[0] / lr_find.LR_FIND_PNG).stat().st_size > 1000
    assert "lr range test" in (runs[0] / "train.log").read_text()
    card = (runs[0] / "best" / "README.md").read_text()
    assert f"lr {chosen[0]:g} (lr range test (--lr auto))" in card
    # the range test leaves no trace: the same run with --lr <the choice> is bit-identical
    plain = tmp_path / "plain"
    run_training(TrainOptions(settings={**SETTINGS, "lr": chosen[0], "output": str(plain)}))
    a, b = weights(runs[0] / "best"), weights(plain / "best")
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow  # about 3 CPU minutes alone on 2 cores; twice that on a busy machine
def test_defaults_from_scratch_reach_90_percent(tmp_path: Path) -> None:
    """Issue 17's new user: the synthetic dataset, a tiny model from scratch, no --lr and no
    --dropout: the scratch recipe must reach >= 90% validation top-1."""
    from tests.engine.runs import ispan, metrics_rows

    run = tmp_path / "run"
    done = ispan("train", "--dataset", "synthetic", "--arch", "istpan_tiny", "--pretrained",
                 "none", "--segments", "4", "--batch-size", "16", "--epochs", "6",
                 "--synthetic-train", "400", "--synthetic-val", "100", "--workers", "1",
                 "--device", "cpu", "--output", str(run), timeout=1200)  # fmt: skip
    assert "recipe scratch-small" in done.stderr  # printed at the start, with the origins
    best = max(r["val_top1"] for r in metrics_rows(run))
    assert best >= 0.9, [r["val_top1"] for r in metrics_rows(run)]
    assert "## Recipe" in (run / "best" / "README.md").read_text()


def test_resume_keeps_the_runs_own_recipe_values(tmp_path: Path, monkeypatch) -> None:
    """A run saved by an ispan without recipes (lr 0.001 from the old defaults, no origins)
    resumes under the same command: values the user did not give are the run's own, in the
    saved settings and in the model the run goes on with."""
    import ispan_cli.nn
    from ispan_cli.engine import checkpoint
    from ispan_cli.engine.launch import TrainOptions, run_training

    built = []
    real_create_model = ispan_cli.nn.create_model

    def create_model(*args, **kwargs):  # the real model, kept to look at
        built.append(real_create_model(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ispan_cli.nn, "create_model", create_model)

    out = tmp_path / "run"
    settings = {**SETTINGS, "synthetic_train": 8, "output": str(out)}
    del settings["dropout"]
    run_training(TrainOptions(settings=settings))
    last = out / "checkpoints" / "last.pt"
    state = checkpoint.load_state(last)
    assert state["config"]["lr"] == RECIPES["scratch-small"].values["lr"]
    for key in ("origins", "recipe"):
        del state["config"][key]
    state["config"].update(lr=0.001, dropout=0.8, warmup_epochs=0.0)
    checkpoint.save_state(state, last)
    run_training(TrainOptions(settings={**settings, "epochs": 2}))
    saved = checkpoint.load_state(last)
    assert saved["epoch"] == 2, "the run was not resumed"
    training = saved["config"]
    assert (training["lr"], training["dropout"], training["epochs"]) == (0.001, 0.8, 2)
    assert built[-1].dropout.p == 0.8  # the resumed model too, not the recipe's dropout
    # an explicit value that differs is still a settings change
    with pytest.raises(UsageError, match=r"lr: 0\.001 -> 0\.5"):
        run_training(TrainOptions(settings={**settings, "epochs": 3, "lr": 0.5}))
