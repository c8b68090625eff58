"""The video classifier: backbone -> pyramid attention -> classifier, TSN-style over K segments."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ispan_cli.errors import ISpanError
from ispan_cli.nn.attention import AttentionOutput, PyramidAttention
from ispan_cli.nn.backbones import Backbone
from ispan_cli.nn.config import ModelConfig
from ispan_cli.nn.losses import diversity_loss, interaction_loss


class AttentionMaps(NamedTuple):
    """Attention of one forward pass in spatial form.

    fused: (B, d, K, H, W) the fused attention A; ``fused[b, m]`` is row m over all positions.
        In ``stack`` mode each row has unit L2 norm over (K, H, W); in ``per_frame`` mode over
        (H, W) for each k separately.
    levels: one (B, d, K, H, W) tensor per pyramid level, shallow to deep: softmax(Y_j) over the
        same positions (rows sum to 1), the level's own attention before fusion.
    """

    fused: Tensor
    levels: tuple[Tensor, ...]


class ISTPAN(nn.Module):
    """Interaction-aware spatio-temporal pyramid attention network (or plain TSN, arch="tsn").

    Input ``(B, K, C, H, W)`` normalised frames, K segments per video, C = ``config.in_channels``
    (3 for RGB); output logits ``(B, num_classes)``. The parameters do not depend on K or on H, W.
    """

    def __init__(self, config: ModelConfig, pretrained: str | Path = "none") -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config.backbone, pretrained, config.in_channels)
        spec = self.backbone.spec
        self.attention: PyramidAttention | None = None
        if config.arch == "istpan":
            self._attention_stage = spec.stages.index(config.attention_layer)
            self._taps = [spec.stages.index(s) for s in config.pyramid]
            self.attention = PyramidAttention(
                [spec.channels_of(s) for s in config.pyramid],
                config.d,
                resample=config.resample,
                fusion=config.fusion,
                output_norm=config.output_norm,
            )
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(spec.channels[-1], config.num_classes)
        # Auxiliary losses of the last forward pass in training mode (see auxiliary_losses). A
        # write-only record for the training loop: forward never reads it, and eval-mode passes
        # (inference, export) never write it.
        self._aux: dict[str, Tensor] = {}

    # -- public surface --------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x, with_maps=False)[0]

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, AttentionMaps]:
        """Logits and the attention maps that produced them (see AttentionMaps for shapes)."""
        if self.attention is None:
            raise ISpanError(
                f"this model is a plain {self.config.arch} baseline without an attention layer; "
                "use an istpan_* model for attention maps"
            )
        logits, maps = self._forward(x, with_maps=True)
        return logits, maps

    def auxiliary_losses(self) -> dict[str, Tensor]:
        """Unweighted auxiliary losses of the last training-mode forward pass, by name.

        Holds ``interaction`` and/or ``diversity`` as switched on in the config; empty for TSN or
        when the last pass ran in eval mode or without gradients. Works through DDP: read it from
        ``ddp_model.module`` after calling the wrapper.
        """
        return dict(self._aux)

    def auxiliary_loss(self) -> Tensor:
        """beta * interaction + gamma * diversity for the last training-mode forward pass."""
        weights = {"interaction": self.config.beta, "diversity": self.config.gamma}
        total = self.fc.weight.new_zeros(())
        for name, value in self._aux.items():
            total = total + weights[name] * value
        return total

    # -- implementation --------------------------------------------------------------------------
    def _forward(self, x: Tensor, with_maps: bool) -> tuple[Tensor, AttentionMaps | None]:
        c = self.config.in_channels
        if x.dim() != 5 or x.shape[2] != c:
            raise ISpanError(f"expected input (B, K, {c}, H, W), got {tuple(x.shape)}")
        b, k = x.shape[:2]
        frames = x.flatten(0, 1)  # (B, K, 3, H, W) -> (B*K, 3, H, W)
        if self.attention is None:
            feats = self.backbone.run(frames)[-1]  # (B*K, C, h, w)
            logits = self._classify(feats.mean(dim=(2, 3)))  # (B*K, classes)
            return logits.view(b, k, -1).mean(1), None  # TSN average consensus

        outs = self.backbone.run(frames, stop=self._attention_stage + 1)
        levels = [outs[i] for i in self._taps]  # (B*K, C_j, H_j, W_j)
        groups = k if self.config.temporal == "stack" else 1
        att = self.attention(levels, groups)  # N = B (stack) or B*K (per_frame)
        rows = att.M  # (N, d, C_i)
        if self.config.residual:  # [ours] f_i + M; in stack mode f_i is averaged over segments
            f_rows = att.X.view(rows.shape[0], groups, -1, att.X.shape[-1]).mean(1)  # (N, H*W, C)
            if f_rows.shape[1] != rows.shape[1]:
                raise ISpanError(
                    f"residual needs d == H*W, but d={rows.shape[1]} and the attention layer has "
                    f"{f_rows.shape[1]} positions per frame; use input_size "
                    f"{self.config.input_size}"
                )
            rows = rows + f_rows
        pooled = self._rest_of_backbone(rows, levels[-1])  # (N, C_last)
        logits = self._classify(pooled)
        if groups == 1:
            logits = logits.view(b, k, -1).mean(1)  # per_frame: TSN average consensus
        if self.training and torch.is_grad_enabled():
            self._aux = self._losses(att)
        maps = self._maps(att, b, k, levels[-1].shape[-2:]) if with_maps else None
        return logits, maps

    def _rest_of_backbone(self, rows: Tensor, f_i: Tensor) -> Tensor:
        """Runs the stages after the attention layer on M (if any), then global average pooling."""
        if self._attention_stage == len(self.backbone.spec.stages) - 1:
            return rows.mean(1)  # average over the d rows == global pooling of the reshaped map
        n, d, c = rows.shape
        h, w = f_i.shape[-2:]
        if d != h * w:
            raise ISpanError(
                f"d={d} rows cannot be reshaped to the {h}x{w} map of "
                f"{self.config.attention_layer}; use input_size {self.config.input_size}"
            )
        spatial = rows.transpose(1, 2).reshape(n, c, h, w)  # (N, d, C) -> (N, C, H_i, W_i)
        out = self.backbone.run(spatial, start=self._attention_stage + 1)[-1]
        return out.mean(dim=(2, 3))

    def _classify(self, pooled: Tensor) -> Tensor:
        return self.fc(self.dropout(pooled))

    def _losses(self, att: AttentionOutput) -> dict[str, Tensor]:
        cfg = self.config
        losses = {}
        if cfg.interaction_loss:
            losses["interaction"] = interaction_loss(att.A, att.X, normalize=cfg.loss_normalize)
        if cfg.diversity_loss:
            losses["diversity"] = diversity_loss(att.a, att.Y, normalize=cfg.loss_normalize)
        return losses

    def _maps(self, att: AttentionOutput, b: int, k: int, hw: torch.Size) -> AttentionMaps:
        h, w = hw

        def spatial(t: Tensor) -> Tensor:
            if self.config.temporal == "stack":
                return t.reshape(b, -1, k, h, w)  # (B, d, K*H*W) -> (B, d, K, H, W)
            # (B*K, d, H*W) -> (B, K, d, H, W) -> (B, d, K, H, W)
            return t.reshape(b, k, -1, h, w).transpose(1, 2)

        return AttentionMaps(
            fused=spatial(att.A), levels=tuple(spatial(y.softmax(dim=-1)) for y in att.Y)
        )
