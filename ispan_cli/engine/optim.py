"""Optimizer, learning-rate schedule and partial BN, as in TSN's recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

from ispan_cli.engine.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on weights of 2 or more dimensions only (not on biases,
    BN affine parameters or the learned fusion weights), the usual choice for ResNets."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier: linear warm-up, then cosine to 0, steps (x0.1 at each fraction of
    ``lr_steps``), or constant."""
    total = max(cfg.epochs * steps_per_epoch, 1)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
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

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
