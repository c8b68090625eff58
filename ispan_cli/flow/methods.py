"""The flow algorithms: TV-L1 (OpenCV contrib, the TSN standard), DIS (OpenCV main module, fast)
and RAFT (torchvision, on a GPU). Each turns consecutive RGB frames into float flow in pixels.

OpenCV methods run with the algorithm's own defaults, which is what dense_flow and MMAction2's
extractors use; the settings are read back from the algorithm and recorded with the flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ispan_cli.data.flow_format import METHODS
from ispan_cli.errors import ISpanError, UsageError

DIS_PRESET = "medium"


@dataclass
class FlowMethod:
    """``flows(frames)``: (N, H, W, 3) uint8 RGB consecutive frames -> (N-1, H, W, 2) float32
    flow from each frame to the next, x then y, in pixels."""

    name: str
    params: tuple[tuple[str, Any], ...]
    flows: Callable[[np.ndarray], np.ndarray]
    batch: int = 32  # frames to decode and hand over at once


def create_method(name: str, device: str = "auto") -> FlowMethod:
    """A ready flow method; a method this machine cannot run is one error saying why."""
    if name == "tvl1":
        return _tvl1()
    if name == "dis":
        return _dis()
    if name == "raft":
        return _raft(device)
    raise UsageError(f"unknown flow method {name!r}; choose one of: {', '.join(METHODS)}")


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _pairwise(calc: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def flows(frames: np.ndarray) -> np.ndarray:
        grays = [_gray(f) for f in frames]
        out = np.empty((max(len(grays) - 1, 0), *grays[0].shape, 2), np.float32)
        for i in range(len(out)):
            out[i] = calc(grays[i], grays[i + 1])
        return out

    return flows


def _read_params(algo: Any, skip: tuple[str, ...] = ()) -> tuple[tuple[str, Any], ...]:
    out = []
    for attr in sorted(dir(algo)):
        if not attr.startswith("get") or attr == "getDefaultName" or attr in skip:
            continue
        value = getattr(algo, attr)()
        if isinstance(value, (bool, int, float)):
            name = attr[3:4].lower() + attr[4:]
            out.append((name, round(value, 6) if isinstance(value, float) else value))
    return tuple(out)


def _tvl1() -> FlowMethod:
    import cv2

    optflow = getattr(cv2, "optflow", None)
    if optflow is None:
        raise ISpanError(
            "--method tvl1 needs OpenCV's contrib module (cv2.optflow), which this OpenCV lacks: "
            "pip uninstall opencv-python-headless opencv-python, then pip install "
            "opencv-contrib-python-headless (only one OpenCV package may be installed); or use "
            "--method dis"
        )
    algo = optflow.DualTVL1OpticalFlow_create()
    return FlowMethod("tvl1", _read_params(algo), _pairwise(lambda a, b: algo.calc(a, b, None)))


def _dis() -> FlowMethod:
    import cv2

    preset = {"ultrafast": 0, "fast": 1, "medium": 2}[DIS_PRESET]
    algo = cv2.DISOpticalFlow_create(preset)
    params = (("preset", DIS_PRESET), *_read_params(algo))
    return FlowMethod("dis", params, _pairwise(lambda a, b: algo.calc(a, b, None)))


RAFT_WEIGHTS = "Raft_Large_Weights.C_T_SKHT_V2"  # torchvision's default RAFT weights
RAFT_ITERATIONS = 12  # torchvision's default number of refinement updates
RAFT_BATCH = 16  # frames per chunk: 15 pairs in one forward pass
# RAFT's correlation pyramid halves its 1/8-resolution features three times and needs them at
# least 16 px (torchvision refuses less): frames are padded to at least 8 * 16 pixels
RAFT_MIN_SIZE = 128


def raft_weights_file() -> Path:
    """Where torchvision keeps the RAFT weights once downloaded (torch hub's checkpoints)."""
    import torch
    from torchvision.models.optical_flow import Raft_Large_Weights

    url = Raft_Large_Weights.C_T_SKHT_V2.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _raft(device: str) -> FlowMethod:
    import torch

    from ispan_cli.runtime.device import parse_device, resolve_device

    # [ours] never on the CPU: raft_large at 320x240 takes about 7 CPU s a flow on a 2-core
    # CPU (random weights; the cost does not depend on them), 5x TV-L1, the CPU standard
    usable = parse_device(device)[0] != "cpu" and torch.cuda.is_available()
    dev = resolve_device(device) if usable else None  # a wrong cuda:N is one error here
    if dev is None or dev.type != "cuda":
        raise ISpanError(
            "--method raft runs on a CUDA GPU and this machine has none usable; use --method "
            "tvl1 (the TSN standard) or dis (fast) on the CPU"
        )
    weights = raft_weights_file()
    if not weights.is_file():
        raise ISpanError(
            f"--method raft needs torchvision's RAFT weights at {weights}; download them once "
            'where there is internet (python -c "from torchvision.models.optical_flow import '
            "raft_large; raft_large(weights='DEFAULT')\") and copy the file there"
        )
    return raft_method(load_raft(weights), dev)


def load_raft(weights: Path) -> Any:
    """torchvision's ``raft_large`` with the state dict saved in ``weights``, loaded strictly."""
    import pickle

    import torch
    from torchvision.models.optical_flow import raft_large

    model = raft_large(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ISpanError(
            f"{weights} is not torchvision's raft_large weights ({' '.join(str(exc).split())[:200]}"
            "); download them again"
        ) from None
    return model.eval()


def raft_method(
    model: Any, device: Any, batch: int = RAFT_BATCH, weights: str = RAFT_WEIGHTS
) -> FlowMethod:
    """A RAFT model (torchvision's ``raft_large`` or ``raft_small``) as a FlowMethod."""
    params = (("weights", weights), ("iterations", RAFT_ITERATIONS))
    return FlowMethod("raft", params, raft_flows(model.to(device), device), batch=batch)


def raft_flows(model: Any, device: Any) -> Callable[[np.ndarray], np.ndarray]:
    """RAFT on consecutive frames, all pairs of a chunk in one batch; frames are padded by edge
    replication to a multiple of 8 (RAFT's stride) and at least RAFT_MIN_SIZE, and the flow
    cropped back."""
    import torch
    import torch.nn.functional as F

    @torch.inference_mode()
    def flows(frames: np.ndarray) -> np.ndarray:
        n, h, w, _ = frames.shape
        if n < 2:
            return np.empty((0, h, w, 2), np.float32)
        x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        x = x / 127.5 - 1.0  # torchvision's RAFT transforms: [-1, 1]
        ph, pw = _padding(h), _padding(w)
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")  # (N, 3, H + ph, W + pw)
        out = model(x[:-1], x[1:], num_flow_updates=RAFT_ITERATIONS)[-1]  # (N-1, 2, H', W')
        return out[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu().numpy()  # (N-1, H, W, 2)

    return flows


def _padding(size: int) -> int:
    """Pixels to add to ``size`` for RAFT: up to a multiple of 8, and to RAFT_MIN_SIZE."""
    return max(RAFT_MIN_SIZE, size + (-size) % 8) - size
