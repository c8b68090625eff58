"""Checking an exported file against PyTorch on frames decoded from a real video.

The same clip (K frames through the one preprocessing definition, 3 crops so the dynamic batch
axis is exercised with B = 3) goes through the PyTorch model and through ONNX Runtime; the
report compares logits, probabilities and top-k, and attention maps when the file has them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PROB_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Agreement:
    """How two runtimes' outputs on the same clips compare."""

    clips: int
    max_abs_logit_diff: float
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    cosine: float  # of the logits, the minimum over clips
    top1_agreement: float  # fraction of clips with the same top class
    top5_agreement: float  # fraction of clips with the same top-5 set
    max_abs_attention_diff: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VerifyReport:
    video: str
    frame_indices: list[int]
    segments: int
    agreement: Agreement
    tolerance: float
    passed: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        out["agreement"] = self.agreement.to_dict()
        return out


def compare(
    reference: np.ndarray, candidate: np.ndarray, attention_diff: float | None = None
) -> Agreement:
    """Compares (N, C) logits of two runtimes on the same N clips."""
    from ispan_cli.runtime.predictor import softmax

    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    p_ref, p_cand = softmax(ref), softmax(cand)
    cos = (ref * cand).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(cand, axis=-1))
    k = min(5, ref.shape[-1])
    top_ref = np.argsort(-p_ref, axis=-1, kind="stable")[:, :k]
    top_cand = np.argsort(-p_cand, axis=-1, kind="stable")[:, :k]
    same5 = [set(a) == set(b) for a, b in zip(top_ref, top_cand, strict=True)]
    return Agreement(
        clips=len(ref),
        max_abs_logit_diff=float(np.abs(ref - cand).max()),
        max_abs_prob_diff=float(np.abs(p_ref - p_cand).max()),
        mean_abs_prob_diff=float(np.abs(p_ref - p_cand).mean()),
        cosine=float(np.nan_to_num(cos, nan=1.0).min()),
        top1_agreement=float((top_ref[:, 0] == top_cand[:, 0]).mean()),
        top5_agreement=float(np.mean(same5)),
        max_abs_attention_diff=attention_diff,
    )


def verify_export(
    model,
    onnx_path: str | Path,
    video: str | Path,
    preprocessing,
    decoder: str = "auto",
    tolerance: float = PROB_TOLERANCE,
) -> VerifyReport:
    """PyTorch ``model`` vs ONNX Runtime (CPU) on ``video``; passed = probabilities within
    ``tolerance``, the same top-1 for every crop, and attention maps (if any) within
    ``tolerance``."""
    from dataclasses import replace

    import torch

    from ispan_cli.runtime.onnx import OnnxPredictor
    from ispan_cli.video.clip import load_clip

    k = model.config.num_segments
    predictor = OnnxPredictor(onnx_path, device="cpu")
    if model.config.in_channels == 3:
        clip = load_clip(str(video), k, replace(preprocessing, crops=3), decoder)
        x, indices = clip.data, clip.indices  # (3 crops, K, 3, S, S): a batch of 3 real views
    else:  # a flow stream: its K flow stacks of the video, made as its FlowSpec says
        from ispan_cli.inference.two_stream import load_flow_clip
        from ispan_cli.video.flow_spec import FlowSpec

        doc = predictor.info.config.get("flow")
        spec = FlowSpec.from_dict(doc) if doc else FlowSpec(length=model.config.in_channels // 2)
        flow = load_flow_clip(
            str(video), k, spec, preprocessing.crop, preprocessing.resize, decoder
        )
        x, indices = flow.data, flow.starts  # (1, K, 2L, S, S)
    model = model.eval()
    with torch.inference_mode():
        if predictor.with_attention:
            ref_logits, maps = model.forward_with_attention(torch.from_numpy(x))
            logits, fused, levels = predictor.logits_with_attention(x)
            diffs = [np.abs(fused - maps.fused.numpy()).max()]
            diffs += [np.abs(a - b.numpy()).max() for a, b in zip(levels, maps.levels, strict=True)]
            attention_diff = float(max(diffs))
        else:
            ref_logits = model(torch.from_numpy(x))
            logits, attention_diff = predictor.logits(x), None
    agreement = compare(ref_logits.numpy(), logits, attention_diff)
    passed = (
        agreement.max_abs_prob_diff <= tolerance
        and agreement.top1_agreement == 1.0
        and (attention_diff is None or attention_diff <= tolerance)
    )
    return VerifyReport(
        video=str(video),
        frame_indices=indices,
        segments=k,
        agreement=agreement,
        tolerance=tolerance,
        passed=passed,
    )
