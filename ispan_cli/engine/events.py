"""Progress events the training loop sends to whoever renders them (the command, with rich).
Only the main process (rank 0) sends events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["start", "check", "step", "eval", "epoch", "message", "done"]


@dataclass(frozen=True)
class TrainEvent:
    """start: data has epochs, steps, start_epoch, start_step, world, device, resumed.
    check: listed videos checked before training (step of steps).
    step: one optimizer step (data: loss, lr). eval: videos scored (step of steps).
    epoch: data is the epoch's metrics row. message: data["text"] (skipped videos, resume)."""

    kind: Kind
    epoch: int = 0
    step: int = 0
    steps: int = 0
    data: dict[str, Any] = field(default_factory=dict)


Reporter = Callable[[TrainEvent], None]
