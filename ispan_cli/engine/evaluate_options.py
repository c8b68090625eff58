"""What ``ispan evaluate`` is asked for: light (no torch), so the command's help reads its
defaults from here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ispan_cli.engine.config import DEFAULT_MAX_SKIPPED


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``ispan evaluate`` was asked for (the command builds it from its options)."""

    dataset: str
    model: str | None = None  # None: the default model
    data_root: str | None = None
    splits: tuple[int, ...] = (1,)
    segments: int | None = None  # None: the model's own K
    crops: int = 1
    batch_size: int = 4
    device: str = "auto"
    workers: int = 2
    decoder: str = "auto"
    output: Path | None = None
    synthetic_sizes: tuple[int, int] = (1000, 200)  # (train, test) clips of the synthetic set
    max_skipped: float = DEFAULT_MAX_SKIPPED
    timeout: float | None = None  # Hub requests (None: the default)
    # two streams (issue 16): the flow model scored on the same videos, fused late with
    # fusion_weights (RGB, flow; TSN's 1, 1.5); flow_root: the extracted flow of the videos
    flow_model: str | None = None
    flow_root: str | None = None
    fusion_weights: tuple[float, ...] = (1.0, 1.5)
    fusion_softmax: bool = False  # fuse probabilities instead of logits
    command: str = ""  # the command line, recorded in metrics.json and the report
