"""MMAction2 1.2 as the reference for ``ispan models import``: its own TSN, checkpoint and pipeline.

Installed by ``make test-mmaction2`` (``pip install --no-deps``, so torch and NumPy stay ispan's).
Two known problems of that install are worked around here at run time, never by editing
installed files:

- the 1.2.0 wheel lacks ``mmaction.models.localizers.drn`` (MMAction2 issue #2714), which
  ``mmaction.models.localizers`` imports: a stand-in module is registered before mmaction loads
  (only the DRN localizer uses it; no test here builds one);
- torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the NumPy scalars and
  mmengine objects in MMAction2's own checkpoints when mmengine loads them: mmengine's loader
  for local files is replaced, for the duration of a ``with``, by one that passes
  ``weights_only=False`` (the file is one this test just wrote; ispan itself never does this).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch

TSN_CONFIG = "recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"
_DRN = ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn")


def available() -> bool:
    """Whether mmaction2, mmengine and mmcv import (with the DRN stand-in registered)."""
    install_drn_stand_in()
    try:
        import mmaction  # noqa: F401
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError:
        return False
    return True


def install_drn_stand_in() -> None:
    for name in _DRN:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = []  # a package, so the submodule import resolves
            sys.modules[name] = module

    class DRN:  # stands in for the localizer class the missing module defines
        def __init__(self, *args, **kwargs):
            raise RuntimeError("the DRN localizer is missing from the mmaction2 1.2.0 wheel")

    sys.modules[_DRN[1]].DRN = DRN


@contextlib.contextmanager
def mmengine_loads_full_pickles() -> Iterator[None]:
    """mmengine's local checkpoint loader with ``weights_only=False`` while the block runs."""
    from mmengine.runner.checkpoint import CheckpointLoader

    original = CheckpointLoader._schemes[""]

    def load_from_local(filename, map_location):
        return torch.load(filename, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)
    try:
        yield
    finally:
        CheckpointLoader.register_scheme(prefixes="", loader=original, force=True)


def config_path() -> Path:
    import mmaction

    return Path(mmaction.__file__).parent / ".mim" / "configs" / TSN_CONFIG


def build_tsn(calibration: torch.Tensor, seed: int = 0):
    """(config, Recognizer2D) from MMAction2's TSN R50 Kinetics-400 config, with seeded random
    weights and random BN statistics (nothing downloaded), in eval mode.

    Random statistics alone let a 50-layer network's activations grow to logits of ~1e4 on video
    frames, where every softmax is one-hot and agreeing means little. So the statistics are first
    measured on ``calibration`` (preprocessed frames, (N, 3, H, W): each BN then sees what it
    normalises), then perturbed at random, and the classifier is scaled so the logits spread by
    about 3 on those frames: probabilities neither flat nor one-hot.
    """
    from mmaction.registry import MODELS
    from mmaction.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    cfg = Config.fromfile(str(config_path()))
    cfg.model.backbone.pretrained = None  # the config would download torchvision's weights
    model = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for name, t in model.named_parameters():
            if t.dim() == 1:  # BN affine and the fc bias
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if "weight" in name else 0))
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5)
        model.train()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # a plain average over the calibration batches
        model.backbone(calibration)
        model.eval()
        for bn in bns:
            bn.running_var.mul_(torch.rand(bn.running_var.shape, generator=g) * 0.5 + 0.75)
            noise = torch.randn(bn.running_mean.shape, generator=g) * 0.1
            bn.running_mean.add_(noise * bn.running_var.sqrt())
        feats = model.backbone(calibration).mean((2, 3))
        # what the frames share (ReLU features are all positive) goes into the bias, so the
        # scores depend on the frames rather than on one class the mean favours
        fc = model.cls_head.fc_cls
        centred = (feats - feats.mean(0)) @ fc.weight.T
        fc.weight.mul_(3.0 / centred.std())
        fc.bias.copy_(-(feats.mean(0) @ fc.weight.T) + torch.randn(fc.bias.shape, generator=g))
    return cfg, model


def save_published_checkpoint(model, cfg, folder: Path, classes: tuple[str, ...]) -> Path:
    """Saves ``model`` as mmengine's Runner saves a checkpoint (meta with NumPy scalars and the
    dataset_meta, the state dict, the message hub's HistoryBuffers) and names the file as
    MMAction2's model zoo does: ``<name>_<date>-<first 8 hex of its sha256>.pth``."""
    import numpy as np
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    hub = MessageHub.get_instance("ispan-reference")
    hub.update_scalar("train/loss", 2.5)
    hub.update_scalar("train/loss", 1.25)
    checkpoint = {
        "meta": {
            "cfg": cfg.pretty_text,
            "seed": np.int64(0),
            "experiment_name": "tsn_reference",
            "time": "20220906_000000",
            "mmengine_version": "0.10.7",
            "epoch": 100,
            "iter": np.int64(123456),
            "dataset_meta": {"classes": tuple(classes)},
        },
        "state_dict": weights_to_cpu(get_state_dict(model)),
        "message_hub": hub.state_dict(),
    }
    tmp = folder / "tsn_reference.pth"
    save_checkpoint(checkpoint, str(tmp))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = (
        folder
        / f"tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb_20220906-{digest}.pth"
    )
    tmp.rename(path)
    return path


def single_view_pipeline(num_clips: int, resize: int, crop: int) -> list[dict]:
    """MMAction2's test pipeline of the TSN config in the single-view form ispan's classify
    uses (K centre frames, one centre crop), with PyAV instead of decord (not installed)."""
    return [
        {"type": "PyAVInit"},
        {
            "type": "SampleFrames",
            "clip_len": 1,
            "frame_interval": 1,
            "num_clips": num_clips,
            "test_mode": True,
        },
        {"type": "PyAVDecode"},
        {"type": "Resize", "scale": (-1, resize)},
        {"type": "CenterCrop", "crop_size": crop},
        {"type": "FormatShape", "input_format": "NCHW"},
        {"type": "PackActionInputs"},
    ]


def frame_indices(pipeline: list[dict], video: Path) -> list[int]:
    """The frame indices MMAction2's own sampler picks for ``video`` (its first two steps)."""
    from mmengine.dataset import Compose

    data = Compose(pipeline[:2])(
        {"filename": str(video), "label": -1, "start_index": 0, "modality": "RGB"}
    )
    return [int(i) for i in data["frame_inds"]]
