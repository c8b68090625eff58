"""The torch side of datasets: clips for training and evaluation, a distributed-aware batch
order, and a collate that drops (and reports) videos that failed to decode.

Every random choice of a training clip (frame offsets, crop, flip) comes from a generator seeded
by (seed, epoch, video index), never from worker or global state: a clip is the same whichever
process or worker loads it, which makes resumed and multi-process runs reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ispan_cli.data import synthetic
from ispan_cli.data.augment import Augment
from ispan_cli.data.items import VideoItem
from ispan_cli.errors import ISpanError
from ispan_cli.video.preprocess import PreprocessSpec, preprocess
from ispan_cli.video.sampling import TSNSampler


@dataclass(frozen=True)
class ClipSettings:
    """How clips are read: K segments, the model's preprocessing, train or eval mode."""

    segments: int
    spec: PreprocessSpec
    train: bool
    seed: int = 0
    decoder: str = "auto"
    flip: bool = True
    synthetic_seed: int = 1


class VideoClips(Dataset):
    """Items are ``(video index, epoch)`` keys; returns ``(clip, label, index, error)``.

    Training clips are (K, 3, S, S): TSN random offsets + augmentation. Evaluation clips are
    (crops, K, 3, S, S): TSN centre frames through ``preprocess``. A video that cannot be read
    gives ``clip=None`` and the error message instead of raising, so one bad file never stops a
    run.
    """

    def __init__(self, items: tuple[VideoItem, ...], settings: ClipSettings) -> None:
        self.items = items
        self.settings = settings
        self.augment = Augment(settings.spec, flip=settings.flip)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int] | int):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        s = self.settings
        rng = np.random.default_rng([s.seed, epoch, index])
        mode = "random" if s.train else "centre"
        sampler = TSNSampler(s.segments, mode=mode, seed=int(rng.integers(2**31)))
        try:
            frames = self._frames(item, sampler)
        except (ISpanError, OSError, ValueError, RuntimeError) as exc:
            return None, item.label, index, f"{item.path}: {exc}"
        # train: (K, 3, S, S) augmented; eval: (crops, K, 3, S, S) through the one preprocess
        clip = self.augment(frames, rng) if s.train else preprocess(frames, s.spec)
        return torch.from_numpy(np.ascontiguousarray(clip)), item.label, index, None

    def _frames(self, item: VideoItem, sampler: TSNSampler) -> np.ndarray:
        if item.path.startswith("synthetic:"):
            _, subset, idx = item.path.split(":")
            clip = synthetic.make_clip(self.settings.synthetic_seed, subset, int(idx))
            times = np.arange(clip.spec.frames) / clip.spec.fps
            indices = sampler.sample(times).indices[0]
            return clip.render(indices)
        from ispan_cli.video.extract import sample_video

        got = sample_video(item.path, sampler, self.settings.decoder, self.settings.spec.resize)
        return got.frames[0]  # (K, H, W, 3)


def collate(batch: list) -> dict:
    """Stacks the readable clips; failures travel along as (index, message) pairs."""
    good = [b for b in batch if b[0] is not None]
    return {
        "clips": torch.stack([b[0] for b in good]) if good else None,
        "labels": torch.tensor([b[1] for b in good], dtype=torch.long),
        "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
        "failed": [(b[2], b[3]) for b in batch if b[0] is None],
    }


class GlobalBatchSampler(Sampler):
    """Shuffled global batches split across ranks: rank r takes the r-th equal slice of each.

    With a global batch of G and W processes, the union of the ranks' batches at a step is the
    same G videos that a single process would see, so 1 process and W processes train on the
    same data. The order depends on (seed, epoch) only; ``start`` skips steps already done (a
    resumed epoch). The last incomplete global batch is dropped.
    """

    def __init__(self, size: int, global_batch: int, rank: int, world: int, seed: int) -> None:
        if global_batch % world:
            raise ISpanError(
                f"--batch-size {global_batch} (the global batch) must be divisible by the "
                f"{world} processes"
            )
        if size < global_batch:
            raise ISpanError(
                f"the training set has {size} videos, fewer than one batch of {global_batch}; "
                "use a smaller --batch-size"
            )
        self.size, self.global_batch, self.rank, self.world = size, global_batch, rank, world
        self.seed, self.epoch, self.start = seed, 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start = epoch, start_step

    def steps(self) -> int:
        return self.size // self.global_batch

    def __len__(self) -> int:
        return self.steps() - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.size)
        local = self.global_batch // self.world
        for step in range(self.start, self.steps()):
            chunk = order[step * self.global_batch : (step + 1) * self.global_batch]
            mine = chunk[self.rank * local : (self.rank + 1) * local]
            yield [(int(i), self.epoch) for i in mine]


class ShardSampler(Sampler):
    """Evaluation: rank r reads videos r, r+W, r+2W, ... in batches; no padding, so every video
    is scored exactly once across the ranks."""

    def __init__(self, size: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.indices = list(range(rank, size, world))
        self.batch = batch

    def __len__(self) -> int:
        return (len(self.indices) + self.batch - 1) // self.batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for i in range(0, len(self.indices), self.batch):
            yield [(j, 0) for j in self.indices[i : i + self.batch]]
