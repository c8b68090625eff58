"""One way to get logits and attention maps, from PyTorch or from an ONNX file with attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.runtime.predictor import ModelIdentity
from ispan_cli.video.preprocess import PreprocessSpec


@dataclass
class AttentionRunner:
    """A loaded model that returns logits with its attention maps."""

    identity: ModelIdentity
    labels: tuple[str, ...]
    preprocessing: PreprocessSpec
    num_segments: int
    pyramid: tuple[str, ...]
    runtime: str
    device: str
    _run: Any

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(N, K, 3, S, S) -> logits (N, C), fused (N, d, K, h, w), levels [(N, d, K, h, w)]."""
        return self._run(np.ascontiguousarray(x, np.float32))

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class_{index}"


def load_runner(spec: str | None, runtime: str = "torch", device: str = "auto") -> AttentionRunner:
    """``--model`` for torch (folder, zoo, Hub) or onnx (a file exported --with-attention)."""
    if runtime == "onnx":
        return _onnx_runner(spec, device)
    return _torch_runner(spec, device)


def _onnx_runner(spec: str | None, device: str) -> AttentionRunner:
    from ispan_cli.runtime.onnx import load_onnx_predictor

    predictor = load_onnx_predictor(spec, device)
    if not predictor.with_attention:
        raise ISpanError(
            f"{predictor.path} has no attention outputs; export it with `ispan export --onnx "
            "--with-attention`, or use --runtime torch"
        )
    return AttentionRunner(
        identity=predictor.identity,
        labels=predictor.labels,
        preprocessing=predictor.preprocessing,
        num_segments=predictor.num_segments,
        pyramid=tuple(predictor.info.config["model"].get("pyramid", ())),
        runtime="onnx",
        device=predictor.device,
        _run=predictor.logits_with_attention,
    )


def _torch_runner(spec: str | None, device: str) -> AttentionRunner:
    from ispan_cli.hub import resolve_model
    from ispan_cli.nn import load_model, read_config
    from ispan_cli.runtime.device import resolve_device
    from ispan_cli.runtime.loading import DEFAULT_MODEL
    from ispan_cli.video.preprocess import spec_from_config

    torch_device = resolve_device(device)
    resolved = resolve_model(spec or DEFAULT_MODEL)
    config, doc = read_config(resolved.path)
    if config.arch != "istpan":
        raise ISpanError(
            f"{resolved.model_id} is a plain {config.arch} model without attention maps; "
            "visualize needs an istpan model"
        )
    identity = ModelIdentity(resolved.model_id, resolved.revision, resolved.sha256, resolved.source)
    model = load_model(resolved.path)
    return torch_runner(model, identity, spec_from_config(config, doc), torch_device)


def torch_runner(model, identity: ModelIdentity, spec: PreprocessSpec, device) -> AttentionRunner:
    """An AttentionRunner over an ISTPAN already in memory (``device``: a torch.device)."""
    import torch

    model = model.to(device).eval()

    def run(x: np.ndarray):
        with torch.inference_mode():
            logits, maps = model.forward_with_attention(torch.from_numpy(x).to(device))
        return (
            logits.float().cpu().numpy(),
            maps.fused.float().cpu().numpy(),
            [m.float().cpu().numpy() for m in maps.levels],
        )

    return AttentionRunner(
        identity=identity,
        labels=model.config.labels,
        preprocessing=spec,
        num_segments=model.config.num_segments,
        pyramid=tuple(model.config.pyramid),
        runtime="torch",
        device=str(device),
        _run=run,
    )
