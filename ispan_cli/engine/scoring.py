"""Scoring every video of a subset once: sharded across processes without padding, gathered,
and checked so that each video counts exactly once."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ispan_cli.data.clips import ClipSettings, ShardSampler, collate
from ispan_cli.data.flow_clips import clips_for
from ispan_cli.data.items import VideoItem
from ispan_cli.engine.distributed import World, all_gather_objects

# Called with (videos done on this process, videos for this process).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Scores:
    """Per-video logits (averaged over crops; the model averages over segments) in the order
    of ``items``; ``failed`` lists (item index, message) for videos that could not be read."""

    indices: np.ndarray  # (N,) item indices of the scored videos, ascending
    logits: np.ndarray  # (N, C)
    labels: np.ndarray  # (N,)
    failed: tuple[tuple[int, str], ...]


@torch.no_grad()
def score_videos(
    model: torch.nn.Module,
    items: tuple[VideoItem, ...],
    settings: ClipSettings,
    batch_size: int,
    world: World,
    workers: int = 2,
    amp: torch.dtype | None = None,
    progress: Progress | None = None,
) -> Scores:
    """Runs ``model`` (eval mode) over ``items``; every rank gets the merged result."""
    from ispan_cli.data.loader import data_loader

    was_training = model.training
    model.eval()
    data = clips_for(items, settings)  # decoded frames, or flow for FlowClipSettings
    sampler = ShardSampler(len(items), batch_size, world.rank, world.size)
    loader = data_loader(data, batch_sampler=sampler, num_workers=workers, collate_fn=collate)
    mine_idx, mine_logits, failed = [], [], []
    done, total = 0, len(sampler.indices)
    device = world.device
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()
    for batch in loader:
        failed.extend(batch["failed"])
        if batch["clips"] is not None:
            clips = batch["clips"].to(device)  # (B, crops, K, C, S, S)
            b, crops = clips.shape[:2]
            with autocast:
                logits = model(clips.flatten(0, 1))  # (B*crops, K, 3, S, S) -> (B*crops, C)
            mine_logits.append(logits.float().view(b, crops, -1).mean(1).cpu())
            mine_idx.append(batch["indices"])
        done += len(batch["indices"]) + len(batch["failed"])
        if progress:
            progress(done, total)
    model.train(was_training)
    local = (
        torch.cat(mine_idx).numpy() if mine_idx else np.zeros(0, np.int64),
        torch.cat(mine_logits).numpy() if mine_logits else None,
        failed,
    )
    parts = all_gather_objects(local, world)
    idx = np.concatenate([p[0] for p in parts]).astype(np.int64)
    logit_parts = [p[1] for p in parts if p[1] is not None]
    logits = np.concatenate(logit_parts) if logit_parts else np.zeros((0, 0), np.float32)
    all_failed = tuple(f for p in parts for f in p[2])
    order = np.argsort(idx, kind="stable")
    idx, logits = idx[order], logits[order] if len(logits) else logits
    seen = np.concatenate([idx, np.array([i for i, _ in all_failed], np.int64)])
    if len(np.unique(seen)) != len(seen) or len(seen) != len(items):
        raise RuntimeError(  # a sharding bug would bias every metric: never report it silently
            f"scored {len(seen)} videos ({len(np.unique(seen))} distinct) for {len(items)} items"
        )
    labels = np.array([items[i].label for i in idx], np.int64)
    return Scores(idx, logits, labels, all_failed)
