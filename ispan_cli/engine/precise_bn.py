"""Precise BN: recompute BatchNorm statistics for the current weights before evaluating.

The running statistics are an exponential average over recent steps; while the weights still
move fast (training from scratch, as for the demo model) they lag so far behind that eval-mode
accuracy falls to chance although train-mode accuracy is high. Averaging the statistics of a few
batches under the final weights fixes that (the remedy of PySlowFast's precise_bn).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ispan_cli.engine.distributed import World


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[Tensor], world: World) -> int:
    """Replaces the running statistics of every BN layer that is in training mode (frozen ones
    are left alone) by their plain average over ``batches``; averaged across processes.
    Other layers run in eval mode (no dropout: the global RNG is not consumed). Returns the
    number of batches used."""
    live = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]
    if not live:
        return 0
    was_training = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in live]
    for bn in live:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
    model.eval()
    for bn in live:
        bn.train()
    used = 0
    for clips in batches:
        model(clips)
        used += 1
    for bn, momentum in zip(live, momenta, strict=True):
        bn.momentum = momentum
        if world.distributed:
            for buf in (bn.running_mean, bn.running_var):
                dist.all_reduce(buf)
                buf /= world.size
    for m, mode in was_training.items():
        m.training = mode
    return used
