"""One way to get logits and attention maps, from PyTorch or from an ONNX file with attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ispan_cli.errors import ISpanError
from ispan_cli.identity import ModelIdentity
from ispan_cli.runtime.predictor import Predictor, TorchPredictor
from ispan_cli.video.flow_spec import FlowSpec
from ispan_cli.video.preprocess import PreprocessSpec


@dataclass
class AttentionRunner:
    """A loaded model that returns logits with its attention maps.

    ``predictor`` carries what the model is (identity, labels, preprocessing, K, runtime,
    device), as it does for classify; the runner adds the pyramid and the attention call.
    """

    predictor: Predictor
    pyramid: tuple[str, ...]
    _run: Any
    flow: FlowSpec | None = None  # a flow stream's: its input is flow made this way

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(N, K, 3, S, S) -> logits (N, C), fused (N, d, K, h, w), levels [(N, d, K, h, w)]."""
        return self._run(np.ascontiguousarray(x, np.float32))


def load_runner(spec: str | None, runtime: str = "torch", device: str = "auto") -> AttentionRunner:
    """``--model`` for torch (folder, zoo, Hub) or onnx (a file exported --with-attention)."""
    from ispan_cli.runtime.loading import load_model

    loaded = load_model(spec, runtime, device)
    if loaded.session is not None:
        runner = _onnx_runner(loaded.session)
    elif loaded.config.arch != "istpan":
        raise ISpanError(
            f"{loaded.identity.id} is a plain {loaded.config.arch} model without attention maps; "
            "visualize needs an istpan model"
        )
    else:
        runner = torch_runner(loaded.model, loaded.identity, loaded.preprocessing, loaded.device)
    runner.flow = loaded.flow  # a flow stream's maps are over its flow stacks (viz/run.py)
    return runner


def _onnx_runner(predictor) -> AttentionRunner:
    if not predictor.with_attention:
        raise ISpanError(
            f"{predictor.path} has no attention outputs; export it with `ispan export --onnx "
            "--with-attention`, or use --runtime torch"
        )
    return AttentionRunner(
        predictor=predictor,
        pyramid=tuple(predictor.info.config["model"].get("pyramid", ())),
        _run=predictor.logits_with_attention,
    )


def torch_runner(model, identity: ModelIdentity, spec: PreprocessSpec, device) -> AttentionRunner:
    """An AttentionRunner over an ISTPAN already in memory (``device``: a torch.device)."""
    import torch

    predictor = TorchPredictor(model, identity, spec, device)
    model = predictor.model

    def run(x: np.ndarray):
        with torch.inference_mode():
            logits, maps = model.forward_with_attention(torch.from_numpy(x).to(device))
        return (
            logits.float().cpu().numpy(),
            maps.fused.float().cpu().numpy(),
            [m.float().cpu().numpy() for m in maps.levels],
        )

    return AttentionRunner(predictor=predictor, pyramid=tuple(model.config.pyramid), _run=run)
