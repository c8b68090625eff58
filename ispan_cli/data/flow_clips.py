"""The flow stream's clips for training and evaluation: the same items, keys and failure
reporting as ``ispan_cli.data.clips.VideoClips``, read from extracted flow (``--flow-root``,
either layout) instead of decoded frames.

A clip is K stacks of L flows, x and y interleaved (2L channels): TSN's flow sampling
(``flow_frames.segment_starts``), TSN's flow augmentation in training (one multi-scale crop and
one flip for every channel; a flip negates x) and the centre crop at test time, normalised by the
model's FlowSpec. A video whose ``flow.json`` says it was made another way than the model
expects is refused (one record for that video; the run goes on).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ispan_cli.data.clips import ClipSettings, VideoClips
from ispan_cli.data.flow_format import FlowSpec, detect_layout, read_meta, video_dirs
from ispan_cli.data.flow_frames import (
    FlowAugment,
    centre_crop_flow,
    find_flow,
    flow_name_candidates,
    segment_starts,
    stack_flows,
)
from ispan_cli.data.items import DatasetSplit, VideoItem
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.terminal import visible
from ispan_cli.video.flow_spec import check_flow_fits

TSN_FLOW = FlowSpec()  # TV-L1, bound 20, L = 5, mean = std = 128


@dataclass(frozen=True)
class FlowClipSettings(ClipSettings):
    """ClipSettings for the flow stream: where the flow is and how the model takes it.

    flow_root: the folder ``ispan flow extract`` wrote (or a shared archive); data_root: the
    dataset's folder, so a video's flow is looked for under its path relative to it.
    """

    flow_root: str = ""
    flow: FlowSpec = TSN_FLOW
    data_root: str | None = None


def with_flow(
    settings: ClipSettings,
    flow: FlowSpec | None,
    flow_root: str | Path | None,
    data_root: str | Path | None = None,
) -> ClipSettings:
    """``settings`` for the flow stream when ``flow`` is given (else unchanged)."""
    if flow is None:
        return settings
    base = {f.name: getattr(settings, f.name) for f in fields(ClipSettings)}
    return FlowClipSettings(
        **base,
        flow_root=str(flow_root),
        flow=flow,
        data_root=None if data_root is None else str(data_root),
    )


def flow_spec_for(cfg, data: DatasetSplit) -> FlowSpec | None:
    """The FlowSpec of a training run (a TrainConfig with ``modality``, ``flow_root``,
    ``flow_length``, ``data_root``) on ``data``; None for an RGB run."""
    if cfg.modality != "flow":
        return None
    items = data.train + data.test
    return spec_of_flow_root(cfg.flow_root, items, cfg.data_root, cfg.flow_length)


def clips_for(items: tuple[VideoItem, ...], settings: ClipSettings) -> Dataset:
    """The dataset of ``items`` for ``settings``: flow clips for FlowClipSettings, else frames."""
    if isinstance(settings, FlowClipSettings):
        return FlowClips(items, settings)
    return VideoClips(items, settings)


class FlowClips(Dataset):
    """Items are ``(video index, epoch)`` keys; returns ``(clip, label, index, error)``.

    Training clips are (K, 2L, S, S); evaluation clips (1, K, 2L, S, S) (one centre view), as
    VideoClips shapes them with 3 channels.
    """

    def __init__(self, items: tuple[VideoItem, ...], settings: FlowClipSettings) -> None:
        self.items = items
        self.settings = settings
        spec, flow = settings.spec, settings.flow
        self.augment = FlowAugment(
            crop=spec.crop, resize=spec.resize, flip=settings.flip, mean=flow.mean, std=flow.std
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int] | int):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        s = self.settings
        rng = np.random.default_rng([s.seed, epoch, index])
        try:
            stacks = self._stacks(item, rng if s.train else None)
            if s.train:
                clip = self.augment(stacks, rng)  # (K, 2L, S, S)
            else:
                clip = centre_crop_flow(
                    stacks, s.spec.crop, s.spec.resize, s.flow.mean, s.flow.std
                )[None]  # (K, 2L, S, S) -> (1, K, 2L, S, S): one view
        except (ISpanError, OSError, ValueError, RuntimeError) as exc:
            return None, item.label, index, f"{item.path}: {exc}"
        return torch.from_numpy(np.ascontiguousarray(clip)), item.label, index, None

    def _stacks(self, item: VideoItem, rng: np.random.Generator | None) -> np.ndarray:
        s = self.settings
        flow = find_flow(s.flow_root, item.path, s.data_root)
        if flow.meta is not None:  # flow from other tools has no record to check
            check_flow_fits(s.flow, flow.meta.spec, f"flow of {visible(item.path)}")
        starts = segment_starts(flow.count, s.segments, s.flow.length, rng)
        return stack_flows(flow, starts, s.flow.length)  # (K, H, W, 2L) uint8


def spec_of_flow_root(
    flow_root: str | Path,
    items: tuple[VideoItem, ...],
    data_root: str | Path | None,
    length: int,
) -> FlowSpec:
    """The FlowSpec a new flow model trained on ``flow_root`` records: the first video's
    ``flow.json`` that is found (TV-L1, bound 20 for flow without records, as the shared
    archives are), with ``length`` L."""
    root = Path(flow_root)
    if not root.is_dir():
        raise UsageError(
            f"--flow-root {visible(root)} is not a folder; extract the dataset's flow with "
            "`ispan flow extract`"
        )
    if any(item.path.startswith("synthetic:") for item in items[:1]):
        raise UsageError(
            "--modality flow reads extracted flow, and the synthetic dataset has no files: write "
            "it as videos (ispan data synth --out DIR), extract their flow (ispan flow extract "
            "DIR -o FLOW), then train with --dataset folder --data-root DIR --flow-root FLOW"
        )
    recorded = recorded_flow_spec(root, items, data_root)
    if recorded is not None:
        return FlowSpec.from_dict({**recorded.to_dict(), "length": length})
    return FlowSpec(layout=detect_layout(root), length=length)


def recorded_flow_spec(
    flow_root: str | Path, items: tuple[VideoItem, ...], data_root: str | Path | None
) -> FlowSpec | None:
    """How the flow under ``flow_root`` was made, from the first ``flow.json`` found among the
    first videos of ``items``; None when there is none (flow from other tools)."""
    root = Path(flow_root)
    layout = detect_layout(root)
    for item in items[:50]:  # the first videos that have flow: enough to find a record
        for name in flow_name_candidates(item.path, data_root):
            meta = read_meta(video_dirs(root, layout, name)[0])
            if meta is not None:
                return meta.spec
    return None
