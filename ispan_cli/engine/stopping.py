"""When a run stops before its last epoch: early stopping on a validation figure, a wall-clock
budget, and the signals a cluster sends before it kills a job (SLURM: SIGTERM, or SIGUSR1 with
``--signal``). Torch-free."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# The signals that ask a run to stop at the next step boundary with a resumable checkpoint.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@dataclass
class Monitor:
    """The best value of a validation figure so far (``"loss"`` is lower-better, the others
    higher-better) and how many evaluations in a row have not improved on it.

    An improvement is a change by more than ``THRESHOLD`` of the best value (relative, as in
    PyTorch's ReduceLROnPlateau): a loss that creeps down by 1e-9 an epoch is a plateau."""

    THRESHOLD = 1e-4

    name: str
    best: float = -math.inf  # the score: the figure, negated for "loss"
    best_epoch: int = 0
    stale: int = 0

    def update(self, row: dict[str, Any]) -> bool:
        """Takes an epoch's metrics row; True when its figure is the best so far. Rows without
        a validation figure (no evaluation that epoch) change nothing."""
        value = row.get(f"val_{self.name}")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        score = -value if self.name == "loss" else value
        margin = self.THRESHOLD * abs(self.best) if math.isfinite(self.best) else 0.0
        if score > self.best + margin:
            self.best, self.best_epoch, self.stale = score, row["epoch"], 0
            return True
        self.stale += 1
        return False

    @property
    def best_value(self) -> float:
        return -self.best if self.name == "loss" else self.best

    def exhausted(self, patience: int) -> bool:
        return patience > 0 and self.stale >= patience

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "best": self.best, "best_epoch": self.best_epoch,
                "stale": self.stale}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Monitor:
        return cls(data["name"], data["best"], data["best_epoch"], data["stale"])


class Budget:
    """A wall-clock budget counted from construction. :meth:`room_for` says whether a piece of
    work whose longest duration so far is known (plus writing a checkpoint) still fits, with a
    safety factor: the run must stop *before* the budget ends, not at it."""

    SAFETY = 1.5

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.longest: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def record(self, kind: str, seconds: float) -> None:
        self.longest[kind] = max(self.longest.get(kind, 0.0), seconds)

    def room_for(self, *kinds: str) -> bool:
        if self.seconds is None:
            return True
        need = sum(self.longest.get(k, 0.0) for k in (*kinds, "checkpoint"))
        return self.elapsed() + self.SAFETY * need < self.seconds


class StopSignals:
    """Records SIGTERM/SIGUSR1 instead of dying, so that the loop stops at the next step
    boundary; a second signal of the same kind ends the process as the default action would."""

    def __init__(self) -> None:
        self.received: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.received == name:  # asked twice: stop now
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            self.received = name

        for s in STOP_SIGNALS:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
