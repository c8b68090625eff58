"""Optimizer, learning-rate schedule and partial BN, as in TSN's recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

from ispan_cli.engine.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on weights of 2 or more dimensions only (not on biases,
    BN affine parameters or the learned fusion weights), the usual choice for ResNets.

    The attention layer's parameters get groups of their own (marked ``"attention": True``) so
    that the schedule can hold them still during the attention warm-up and give them their own
    learning-rate multiplier (see make_scheduler)."""
    attention = getattr(model, "attention", None)
    attention_ids = {id(p) for p in attention.parameters()} if attention is not None else set()
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            buckets.setdefault((id(p) in attention_ids, p.dim() > 1), []).append(p)
    groups = [
        {
            "params": buckets.get((is_attention, decays), []),
            "weight_decay": cfg.weight_decay if decays else 0.0,
            "attention": is_attention,
        }
        for is_attention in (False, True)
        for decays in (True, False)
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier: linear warm-up, then cosine to 0, steps (x0.1 at each fraction of
    ``lr_steps``), or constant.

    The attention groups (make_optimizer) follow the same curve times ``attention_lr``, and are
    held at 0 for the first ``attention_warmup`` fraction of the run [ours, off by default]: the
    layer stays at its near-uniform start (TSN's average pooling) while the classifier learns.
    It was tried against the attention's habit of avoiding the synthetic target with the paper's
    M = A X (``--no-output-norm``): it made the dip shallower (0.24x -> 0.57x-0.73x of a uniform
    map's mass in the target's box) without removing it. The cause was M's scale, which
    ``ModelConfig.output_norm`` (on by default) removes; with it no warm-up is needed
    (benchmarks/attention_in_box.py, BENCHMARKS.md "Where the attention goes").
    """
    total = max(cfg.epochs * steps_per_epoch, 1)
    if cfg.max_steps:  # the run ends there, and so does its schedule
        total = min(total, cfg.max_steps)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    attention_start = int(cfg.attention_warmup * total)
    schedule, milestones = cfg.schedule, [int(f * total) for f in cfg.lr_steps]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        if schedule == "step":
            return 0.1 ** sum(step >= m for m in milestones)
        return 1.0

    def attention_factor(step: int) -> float:
        return 0.0 if step < attention_start else cfg.attention_lr * factor(step)

    lambdas = [attention_factor if g.get("attention") else factor for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def freeze_partial_bn(model: nn.Module, all_layers: bool = False) -> int:
    """TSN's partial BN: every BatchNorm but the first (or every one, ``all_layers``) runs in
    eval mode (running statistics frozen) with its affine parameters frozen. Call after each
    ``model.train()``. Returns the number of frozen layers."""
    frozen = 0
    first = not all_layers
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if first:
                first = False
                continue
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
            frozen += 1
    return frozen
