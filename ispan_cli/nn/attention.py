"""The interaction-aware pyramid attention layer (arXiv:1808.01106; steps 1-5 of the
README's "The model").

Shapes: N attention groups (videos in ``stack`` mode, frames in ``per_frame`` mode), P = K*H*W
positions (K = 1 per frame), C_j channels of level j, d attention rows.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionOutput(NamedTuple):
    M: Tensor  # (N, d, C_i) attended features: A X_i, over A's mean row sum if output_norm
    A: Tensor  # (N, d, P) fused attention: softmax over positions, then rows L2-normalised
    a: Tensor  # (N, d, P) fused attention before the L2 normalisation (rows sum to 1)
    Y: tuple[Tensor, ...]  # per level (N, d, P) scores Y_j = W_j X_j^T + b_j
    X: Tensor  # (N, P, C_i) the attention layer's own features, flattened


class PyramidAttention(nn.Module):
    """Scores positions from several layers' features, fuses, softmaxes and pools ``f_i``.

    in_channels: C_j of each pyramid level, shallow to deep; the last level is f_i.
    d: number of attention rows (H_i*W_i in the paper).
    resample: operator R bringing each earlier level to f_i's H_i x W_i (avg | max | bilinear).
    fusion: F over the levels' scores (sum | mean | max | weighted).
    output_norm: [ours] divide M by the mean row sum of A (one scalar per group), so M's rows
        average to a weighted mean of X_i's positions whose weights sum to 1; off: M = A X_i.
    """

    def __init__(
        self,
        in_channels: list[int],
        d: int,
        resample: str = "avg",
        fusion: str = "sum",
        output_norm: bool = False,
    ):
        super().__init__()
        self.d = d
        self.resample = resample
        self.fusion = fusion
        self.output_norm = output_norm
        # W_j (d, C_j) and b_j (d,): one linear map per level, applied to every position.
        self.scores = nn.ModuleList(nn.Linear(c, d) for c in in_channels)
        for layer in self.scores:
            # [ours] small weights and zero bias: attention starts close to uniform (so the model
            # starts close to TSN's average pooling), while random rows break the symmetry.
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        self.level_weights = (
            nn.Parameter(torch.ones(len(in_channels))) if fusion == "weighted" else None
        )

    def forward(self, feats: list[Tensor], segments: int) -> AttentionOutput:
        """feats[j]: (N*segments, C_j, H_j, W_j); the segments of one group are consecutive."""
        h, w = feats[-1].shape[-2:]
        xs = [flatten_positions(self._resample(f, h, w), segments) for f in feats]
        # (N, P, d) -> (N, d, P) per level
        ys = tuple(s(x).transpose(1, 2) for s, x in zip(self.scores, xs, strict=True))
        a = self._fuse(ys).softmax(dim=-1)  # softmax over the positions of each row
        A = F.normalize(a, p=2.0, dim=-1)  # then unit L2 norm per row
        M = torch.bmm(A, xs[-1])  # (N, d, P) @ (N, P, C_i) -> (N, d, C_i)
        if self.output_norm:
            # sum(A) / d: between 1 (every row on one position) and sqrt(P) (every row flat)
            M = M / (A.sum(dim=(1, 2), keepdim=True) / A.shape[1])
        return AttentionOutput(M=M, A=A, a=a, Y=ys, X=xs[-1])

    def _resample(self, f: Tensor, h: int, w: int) -> Tensor:
        if f.shape[-2:] == (h, w):
            return f
        if self.resample == "avg":
            return F.adaptive_avg_pool2d(f, (h, w))
        if self.resample == "max":
            return F.adaptive_max_pool2d(f, (h, w))
        return F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)

    def _fuse(self, ys: tuple[Tensor, ...]) -> Tensor:
        stacked = torch.stack(ys)  # (L, N, d, P)
        if self.fusion == "sum":
            return stacked.sum(0)
        if self.fusion == "mean":
            return stacked.mean(0)
        if self.fusion == "max":
            return stacked.amax(0)
        return torch.einsum("l,lndp->ndp", self.level_weights, stacked)


def flatten_positions(f: Tensor, segments: int) -> Tensor:
    """(N*K, C, H, W) -> (N, K*H*W, C): one row per position, the K frames stacked (k, y, x)."""
    nk, c, h, w = f.shape
    return (
        f.view(nk // segments, segments, c, h, w)
        .permute(0, 1, 3, 4, 2)
        .reshape(nk // segments, segments * h * w, c)
    )
