"""``--lr auto``: a learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's
``lr_find``, Lightning's ``Tuner.lr_find``) before training.

The learning rate grows geometrically over a few dozen steps while the loss is recorded; the
choice is a tenth of the rate at which the smoothed loss is lowest, the first steps excluded
(fastai's ``lr_min``, the classic rule: the minimum itself is already too hot to train at).
The model, its BN statistics and the random generators are put back afterwards, so training
then runs exactly as it would with ``--lr <the choice>``. Deterministic with ``--seed``.
Torch-free apart from the plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

START, END, STEPS = 1e-5, 1.0, 60
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum
SMOOTHING = 0.9  # exponential moving average of the loss, bias-corrected
# the first steps are not candidates (as Lightning's skip_begin): at rates too small to move
# anything, batch-to-batch noise alone can make one of them the lowest
SKIP_BEGIN = 10
LR_FIND_PNG = "lr_find.png"


def rates(steps: int = STEPS, start: float = START, end: float = END) -> list[float]:
    """``steps`` learning rates from ``start`` to ``end``, evenly spaced in log scale."""
    if steps < 2:
        return [start]
    ratio = (end / start) ** (1 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


@dataclass(frozen=True)
class RangeTest:
    lrs: list[float]  # the rates tried, one per step
    losses: list[float]  # the loss at each (raw)
    smoothed: list[float]
    chosen: float
    best_index: int  # where the smoothed loss is lowest

    def describe(self) -> str:
        return (
            f"lr range test: {len(self.lrs)} steps from {self.lrs[0]:.0e} to {self.lrs[-1]:.2g}; "
            f"lowest smoothed loss {self.smoothed[self.best_index]:.3f} at lr "
            f"{self.lrs[self.best_index]:.3g}, so lr {self.chosen:.3g} (a tenth of it); curve "
            f"in {LR_FIND_PNG}"
        )


def smooth(losses: list[float]) -> list[float]:
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = SMOOTHING * avg + (1 - SMOOTHING) * loss
        out.append(avg / (1 - SMOOTHING**i))
    return out


def diverged(smoothed: list[float]) -> bool:
    """Whether the test may stop: the last smoothed loss is not finite or far above the best."""
    last = smoothed[-1]
    return not math.isfinite(last) or last > DIVERGED * min(smoothed)


def record(step, batches, lrs: list[float], progress=None) -> list[float]:
    """The loss of ``step(lr, batch)`` at each rate of ``lrs`` in turn (``batches``: an
    endless iterator), stopping early once the loss has diverged."""
    losses: list[float] = []
    for batch in batches:
        lr = lrs[len(losses)]
        losses.append(step(lr, batch))
        if progress is not None:
            progress(len(losses), losses[-1], lr)
        if len(losses) == len(lrs) or diverged(smooth(losses)):
            break
    return losses


def choose(lrs: list[float], losses: list[float]) -> RangeTest:
    """The choice for the losses recorded at ``lrs[:len(losses)]``."""
    smoothed = smooth(losses)
    start = SKIP_BEGIN if len(losses) > 2 * SKIP_BEGIN else 0
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v) and i >= start]
    if not finite:
        raise ValueError("the range test's loss was never finite")
    best = min(finite, key=lambda i: smoothed[i])
    return RangeTest(lrs[: len(losses)], losses, smoothed, lrs[best] / 10, best)


def plot(path: Path, test: RangeTest) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(test.lrs, test.losses, alpha=0.3, label="loss")
    ax.plot(test.lrs, test.smoothed, label="smoothed")
    ax.axvline(test.chosen, color="C2", linestyle="--", label=f"chosen {test.chosen:.3g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="lr range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def find_lr(model, net, cfg, train_data, world, forward, train_mode, progress=None) -> RangeTest:
    """``--lr auto``: the range test on ``train_data``, in an order of its own; ``model``'s
    weights and the random generators are then put back as they were.

    net: ``model`` as trained (DDP-wrapped or itself); forward: a batch -> (loss, empty), where
    empty marks a batch of which every video failed; train_mode: puts ``net`` in training mode
    (and the frozen BN layers back in eval); progress: (done, loss, lr) after each step.
    Raises ISpanError when the loss was never finite.
    """
    import itertools

    import torch

    from ispan_cli.data.clips import GlobalBatchSampler, collate
    from ispan_cli.data.loader import data_loader
    from ispan_cli.engine import checkpoint as ckpt
    from ispan_cli.engine.distributed import all_reduce_sum
    from ispan_cli.engine.optim import make_optimizer
    from ispan_cli.errors import ISpanError

    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = ckpt.rng_state()
    optimizer = make_optimizer(model, cfg)
    lrs = rates()
    sampler = GlobalBatchSampler(
        len(train_data), cfg.batch_size, world.rank, world.size, cfg.seed + 2
    )
    train_mode()

    def batches():  # epoch after epoch, in an order of the range test's own
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from data_loader(
                train_data, batch_sampler=sampler, num_workers=cfg.workers,
                collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed + 2),
            )  # fmt: skip

    def step(lr: float, batch) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr * (cfg.attention_lr if group.get("attention") else 1.0)
        loss, empty = forward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        mine = [0.0, 0.0] if empty else [float(loss.detach()), 1.0]
        total, count = all_reduce_sum(mine, world)  # every process: the same loss
        return total / count if count else float("nan")

    losses = record(step, batches(), lrs, progress)
    model.load_state_dict(weights)
    ckpt.set_rng_state(rng)
    try:
        return choose(lrs, losses)
    except ValueError:
        raise ISpanError(
            "--lr auto: the training loss was never finite in the range test; give --lr"
        ) from None
