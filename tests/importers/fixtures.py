"""Small checkpoints in MMAction2's exact key layout, saved the way MMAction2 publishes them.

The layout is written out here independently of ispan's converter: mmaction2's 2D ResNet
(``mmaction/models/backbones/resnet.py``) wraps every convolution and its BatchNorm in an mmcv
``ConvModule`` (``conv1.conv``, ``conv1.bn``; ``layerN.M.convK.conv`` / ``.bn``;
``downsample.conv`` / ``.bn``) and TSNHead's classifier is ``cls_head.fc_cls``.
"""

from __future__ import annotations

import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torchvision


def torchvision_tsn(depth: int, num_classes: int, in_channels: int = 3, seed: int = 0):
    """(torchvision ResNet with seeded random weights and BN statistics, fc) in eval mode."""
    g = torch.Generator().manual_seed(seed)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    if in_channels != 3:
        net.conv1 = torch.nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    fc = torch.nn.Linear(net.fc.in_features, num_classes)
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        for name, t in [*net.named_parameters(), *net.named_buffers(), *fc.named_parameters()]:
            if "num_batches_tracked" in name:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN affine and the fc bias
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if "weight" in name else 0))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return net.eval(), fc.eval()


def reference_logits(net, fc, clips: torch.Tensor) -> torch.Tensor:
    """TSN as MMAction2 computes it: per-frame features, average consensus, then fc_cls."""
    b, k = clips.shape[:2]
    with torch.no_grad():
        feats = net(clips.flatten(0, 1)).view(b, k, -1)  # (B*K, C) -> (B, K, C)
        return fc(feats.mean(1))


_RULES = (
    (r"^conv1\.weight$", "conv1.conv.weight"),
    (r"^bn1\.(\w+)$", r"conv1.bn.\1"),
    (r"^(layer\d\.\d+)\.conv(\d)\.weight$", r"\1.conv\2.conv.weight"),
    (r"^(layer\d\.\d+)\.bn(\d)\.(\w+)$", r"\1.conv\2.bn.\3"),
    (r"^(layer\d\.\d+)\.downsample\.0\.weight$", r"\1.downsample.conv.weight"),
    (r"^(layer\d\.\d+)\.downsample\.1\.(\w+)$", r"\1.downsample.bn.\2"),
)


def mmaction2_state_dict(net, fc) -> OrderedDict:
    out = OrderedDict()
    for key, value in net.state_dict().items():
        for pattern, repl in _RULES:
            if re.match(pattern, key):
                out["backbone." + re.sub(pattern, repl, key)] = value.clone()
                break
        else:
            raise AssertionError(f"fixture rule missing for {key}")
    out["cls_head.fc_cls.weight"] = fc.weight.detach().clone()
    out["cls_head.fc_cls.bias"] = fc.bias.detach().clone()
    return out


class _Fake:
    """Classes pickled under mmengine's names, as a real 1.x checkpoint carries them."""


def _mmengine_classes():
    names = ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer", "mmengine.config",
             "mmengine.config.config")  # fmt: skip
    for n in names:
        sys.modules.setdefault(n, types.ModuleType(n))

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([2.5, 1.25])
            self._count_history = np.array([1, 1])
            self.max_length = 1000000
            # mmengine's HistoryBuffer carries its statistics methods: pickle protocol 2 writes
            # them as getattr(HistoryBuffer, "min"), a builtin global the loader must keep inert
            self._statistics_methods = {"min": HistoryBuffer.min, "max": HistoryBuffer.max}

        def min(self):
            return self._log_history.min()

        def max(self):
            return self._log_history.max()

    class ConfigDict(dict):
        pass

    HistoryBuffer.__module__ = "mmengine.logging.history_buffer"
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    for method in (HistoryBuffer.min, HistoryBuffer.max):
        method.__module__ = HistoryBuffer.__module__
        method.__qualname__ = f"HistoryBuffer.{method.__name__}"
    ConfigDict.__module__ = "mmengine.config.config"
    ConfigDict.__qualname__ = "ConfigDict"
    sys.modules["mmengine.logging.history_buffer"].HistoryBuffer = HistoryBuffer
    sys.modules["mmengine.config.config"].ConfigDict = ConfigDict
    return names, HistoryBuffer, ConfigDict


def save_mmaction2_checkpoint(
    path: Path,
    state: OrderedDict,
    classes: tuple[str, ...] | None = None,
    payload: object | None = None,
    version: int = 1,
) -> Path:
    """Saves ``state`` as MMAction2 publishes a checkpoint: 1.x (mmengine) or 0.x (mmcv) meta."""
    names, history_buffer, config_dict = _mmengine_classes()
    try:
        if version == 1:
            meta = {
                "epoch": 100,
                "iter": np.int64(123456),
                "cfg": "model = dict(type='Recognizer2D', ...)",
                "seed": np.int64(42),
                "experiment_name": "tsn_fixture",
                "time": "20220906_000000",
                "mmengine_version": "0.10.7",
                "hook_msgs": config_dict(best_score=np.float64(0.7283)),
            }
            if classes is not None:
                meta["dataset_meta"] = {"classes": tuple(classes)}
            ckpt = {
                "meta": meta,
                "state_dict": state,
                "message_hub": {"log_scalars": {"train/loss": history_buffer()}},
            }
        else:
            meta = {"mmcv_version": "1.3.0", "epoch": 100, "iter": 1000, "config": "..."}
            ckpt = {"meta": meta, "state_dict": state}
        if payload is not None:
            ckpt["meta"]["payload"] = payload
        torch.save(ckpt, path, _use_new_zipfile_serialization=version == 1)
    finally:
        for n in names:  # an importing process has no mmengine
            sys.modules.pop(n, None)
    return path
