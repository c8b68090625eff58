"""``classify --save-video --attention``: each window's attention drawn on the frames it covers.

The heat of a window is ISTPAN's fused attention mass (``viz/maps.py``) of the window's K frames,
averaged over them: where in the picture the model looked for that window. It covers the
model's centre crop (the rest of the frame is dimmed), as in ``ispan visualize``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.viz.maps import attention_mass
from ispan_cli.viz.render import crop_box, overlay


class WindowHeat:
    """A ``decorate(frame, record)`` for the labelled video of ``path``; reads each window's
    frames again (its own reader) and runs the model's attention pass once per window."""

    def __init__(self, predictor: Predictor, path: str, alpha: float = 0.5) -> None:
        from ispan_cli.video.decoder import open_video
        from ispan_cli.viz.runner import torch_runner

        model = getattr(predictor, "model", None)
        if model is None or not hasattr(model, "forward_with_attention"):
            raise UsageError(
                "--attention needs an istpan model on --runtime torch (its attention maps)"
            )
        self.runner = torch_runner(
            model, predictor.identity, predictor.preprocessing, predictor.torch_device
        )
        self.spec = replace(predictor.preprocessing, crops=1)
        self.alpha = alpha
        self.reader = open_video(path)
        self._window: int | None = None
        self._heat: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, record: dict | None) -> np.ndarray:
        if not record or not record.get("frames"):
            return frame
        index = record["window"]["index"]
        if index != self._window:
            self._heat, self._window = self._window_heat(record), index
        h, w = frame.shape[:2]
        return overlay(frame, self._heat, crop_box(w, h, self.spec), self.alpha, "turbo")

    def _window_heat(self, record: dict) -> np.ndarray:
        from ispan_cli.video.preprocess import preprocess

        frames = self.reader.read(record["frames"]["indices"], short_side=self.spec.resize)
        x = preprocess(frames, self.spec)  # (K, H, W, 3) -> (1, K, 3, S, S)
        try:
            _, fused, _ = self.runner.run(x)
        except RuntimeError as exc:
            raise ISpanError(f"the attention pass failed: {exc}") from None
        mass = attention_mass(fused)[0].mean(axis=0)  # (K, h, w) -> (h, w)
        return mass / max(float(mass.max()), 1e-12)

    def close(self) -> None:
        self.reader.close()
