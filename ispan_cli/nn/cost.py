"""Parameter and FLOP counts, measured on the real module graph (meta tensors: no memory, fast)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ispan_cli.nn.config import ModelConfig


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    flops: int  # FLOPs (a multiply-add counts 2) of one forward pass on one clip
    segments: int
    input_size: int


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_cost(config: ModelConfig, segments: int | None = None) -> ModelCost:
    """Parameters and forward FLOPs of ``config`` for one clip of K segments at its input size."""
    from torch.utils.flop_counter import FlopCounterMode

    from ispan_cli.nn.model import ISTPAN

    k = segments or config.num_segments
    with torch.device("meta"):
        model = ISTPAN(config).eval()
        x = torch.empty(1, k, 3, config.input_size, config.input_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return ModelCost(count_parameters(model), counter.get_total_flops(), k, config.input_size)
