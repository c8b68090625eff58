"""The optimizer's parameter groups and the attention warm-up of the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.optim import make_optimizer, make_scheduler
from ispan_cli.errors import UsageError
from ispan_cli.nn import create_model


def _lrs(optimizer, scheduler, steps: int) -> list[list[float]]:
    """Learning rate of every group at each of ``steps`` steps (no parameter changes)."""
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return out


def test_attention_parameters_are_grouped_apart_with_the_right_decay() -> None:
    model = create_model("istpan_tiny", labels=("a", "b"), fusion="weighted")
    cfg = TrainConfig(weight_decay=1e-3)
    groups = make_optimizer(model, cfg).param_groups
    attention = {id(p) for p in model.attention.parameters()}
    seen = set()
    for g in groups:
        for p in g["params"]:
            assert (id(p) in attention) == g["attention"]
            assert g["weight_decay"] == (1e-3 if p.dim() > 1 else 0.0)
            seen.add(id(p))
    assert seen == {id(p) for p in model.parameters()}  # every parameter exactly once
    assert sum(len(g["params"]) for g in groups) == len(seen)
    # W_j weights decay; the biases b_j and the learned fusion weights do not
    assert any(g["attention"] and g["weight_decay"] > 0 and g["params"] for g in groups)
    assert any(g["attention"] and g["weight_decay"] == 0 and g["params"] for g in groups)


def test_attention_is_held_still_then_runs_at_its_multiplier() -> None:
    model = create_model("istpan_tiny", labels=("a", "b"))
    cfg = TrainConfig(epochs=4, lr=0.1, warmup_epochs=1, attention_warmup=0.5, attention_lr=3)
    steps_per_epoch = 5
    optimizer = make_optimizer(model, cfg)
    lrs = _lrs(optimizer, make_scheduler(optimizer, cfg, steps_per_epoch), 20)
    flags = [g["attention"] for g in optimizer.param_groups]
    for step, row in enumerate(lrs):
        # the independent definition: linear warm-up over 5 steps, then cosine over 15
        if step < 5:
            base = 0.1 * (step + 1) / 5
        else:
            base = 0.1 * 0.5 * (1 + math.cos(math.pi * (step - 5) / 15))
        for lr, is_attention in zip(row, flags, strict=True):
            want = (0.0 if step < 10 else 3 * base) if is_attention else base
            assert lr == pytest.approx(want, abs=1e-12), (step, is_attention)


def test_attention_warmup_leaves_attention_weights_untouched_by_training() -> None:
    torch.manual_seed(0)
    model = create_model("istpan_tiny", labels=("a", "b"), dropout=0.0)
    cfg = TrainConfig(epochs=2, lr=0.05, attention_warmup=0.5)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=2)
    before = [p.detach().clone() for p in model.attention.parameters()]
    fc_before = model.fc.weight.detach().clone()
    x, y = torch.randn(2, 2, 3, 64, 64), torch.tensor([0, 1])
    for step in range(4):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) + model.auxiliary_loss()
        loss.backward()
        optimizer.step()
        scheduler.step()
        after = model.attention.parameters()
        moved = [not torch.equal(b, p) for b, p in zip(before, after, strict=True)]
        assert any(moved) == (step >= 2), step  # frozen for the first half, then learning
    assert not torch.equal(fc_before, model.fc.weight)  # the rest learned all along


def test_tsn_has_empty_attention_groups_and_settings_are_checked() -> None:
    model = create_model("tsn_tiny", labels=("a", "b"))
    optimizer = make_optimizer(model, TrainConfig())
    assert all(not g["params"] for g in optimizer.param_groups if g["attention"])
    with pytest.raises(UsageError, match="attention-warmup"):
        TrainConfig(attention_warmup=1.0)
    with pytest.raises(UsageError, match="attention-lr"):
        TrainConfig(attention_lr=-1)
