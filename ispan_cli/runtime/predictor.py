"""One interface for running a model on preprocessed clips, whatever the runtime.

A predictor takes the output of :func:`ispan_cli.video.preprocess.preprocess` for a batch of
videos, ``(B, crops, K, 3, S, S)`` float32, and returns class probabilities ``(B, num_classes)``:
the logits of a video's crops are averaged, then a softmax is taken (TSN's test protocol, the same
averaging the model applies over segments).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ispan_cli.identity import ModelIdentity
from ispan_cli.video.preprocess import PreprocessSpec


class Predictor(ABC):
    """A loaded model ready to score preprocessed clips."""

    identity: ModelIdentity
    labels: tuple[str, ...]
    preprocessing: PreprocessSpec
    num_segments: int
    runtime: str
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100)"

    @abstractmethod
    def predict(self, clips: np.ndarray) -> np.ndarray:
        """(B, crops, K, 3, S, S) float32 -> (B, num_classes) float32 probabilities."""

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class_{index}"


class TorchPredictor(Predictor):
    """PyTorch eager inference; reduced precision through autocast."""

    runtime = "torch"

    def __init__(
        self,
        model,
        identity: ModelIdentity,
        preprocessing: PreprocessSpec,
        device,
        precision: str = "fp32",
    ) -> None:
        import torch

        from ispan_cli.runtime.device import autocast_dtype, check_precision

        check_precision(precision, device)
        self.model = model.eval().to(device)
        self.identity = identity
        self.labels = model.config.labels
        self.num_segments = model.config.num_segments
        self.preprocessing = preprocessing
        self.torch_device = device
        self.precision = precision
        self._autocast = autocast_dtype(precision)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
        self.device = f"{device} ({name})" if name else str(device)

    def predict(self, clips: np.ndarray) -> np.ndarray:
        import torch

        b, crops = clips.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(clips))
        if self.torch_device.type == "cuda":
            x = x.pin_memory().to(self.torch_device, non_blocking=True)
        x = x.flatten(0, 1)  # (B, crops, K, 3, S, S) -> (B*crops, K, 3, S, S)
        with (
            torch.inference_mode(),
            torch.autocast(
                self.torch_device.type, dtype=self._autocast, enabled=self._autocast is not None
            ),
        ):
            logits = self.model(x)
        logits = logits.float().view(b, crops, -1).mean(1)  # average the crops' scores
        return logits.softmax(-1).cpu().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float32, stable for large logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
