"""Starting a run from another model's weights (``--init-from MODEL``) and freezing the backbone
for a linear probe (``--freeze-backbone``).

Weights are taken by name and shape; everything else keeps its fresh initialisation, and the
report names each tensor in each group, so that nothing is loaded silently or half-loaded
without a word. The classifier is kept when the label lists match, remapped row by row when
some labels are shared, and re-initialised otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ispan_cli.errors import UsageError

# ISTPAN's classifier (nn/model.py: ``self.fc``): one row per label
CLASSIFIER = ("fc.weight", "fc.bias")
FREEZE_ALL = "all"


@dataclass(frozen=True)
class InitReport:
    """What ``--init-from`` did to each tensor of the new model."""

    source: str  # the model's identity (display form)
    sha256: str
    classifier: str  # "kept", "remapped" or "initialised"
    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)  # missing in the source, or mis-shaped
    mismatched: dict[str, str] = field(default_factory=dict)  # key -> "source shape -> ours"
    unused: list[str] = field(default_factory=list)  # source tensors the new model has no use for
    remapped_labels: list[str] = field(default_factory=list)  # rows taken over by label name
    new_labels: list[str] = field(default_factory=list)  # rows initialised afresh

    def describe(self) -> str:
        """One line for the log and the model card."""
        unused = f", {len(self.unused)} of the source's unused" if self.unused else ""
        parts = [
            f"initialised from {self.source}: {len(self.loaded)} tensors loaded by name and "
            f"shape, {len(self.initialised)} initialised afresh{_listed(self.initialised)}"
            f"{unused}{_listed(self.unused)}"
        ]
        if self.classifier == "kept":
            parts.append("classifier kept (same labels)")
        elif self.classifier == "remapped":
            parts.append(
                f"classifier remapped by label name: {len(self.remapped_labels)} labels taken "
                f"over, {len(self.new_labels)} new{_listed(self.new_labels)}"
            )
        else:
            parts.append("classifier initialised afresh (no label in common)")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitReport:
        return cls(**data)


def _listed(names: list[str], shown: int = 8) -> str:
    if not names:
        return ""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f" ({', '.join(names[:shown])}{more})"


def init_from(model: nn.Module, spec: str, labels: tuple[str, ...]) -> InitReport:
    """Loads the weights of the model ``spec`` names (anything ``--model`` takes) into
    ``model``, whose classes are ``labels``."""
    from ispan_cli.runtime.loading import load_model

    source = load_model(spec, device="cpu")
    state = cross_modality_state(model, source.model.state_dict())
    report = load_matching(model, state, source.labels, labels)
    return InitReport(
        **{**report.to_dict(), "source": source.identity.display, "sha256": source.identity.sha256}
    )


def cross_modality_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict:
    """``state`` with an RGB model's first convolution converted for a flow ``model`` (2L
    channels) by TSN's cross-modality pre-training (``ispan_cli.nn.flow``), so a flow stream
    can start from a trained RGB model as it does from ImageNet."""
    from ispan_cli.nn.flow import FIRST_CONV, cross_modality

    config = model.config
    key = "backbone.net." + FIRST_CONV[config.backbone]
    weight = state.get(key)
    if config.in_channels == 3 or weight is None or weight.dim() != 4 or weight.shape[1] != 3:
        return state
    return {**state, key: cross_modality(weight, config.in_channels)}


def load_matching(
    model: nn.Module,
    source: dict[str, torch.Tensor],
    source_labels: tuple[str, ...],
    labels: tuple[str, ...],
) -> InitReport:
    """Copies every tensor of ``source`` whose name and shape ``model`` shares (the classifier by
    label, see the module docstring); returns what was done."""
    target = model.state_dict()
    loaded, initialised, mismatched = [], [], {}
    for key, value in target.items():
        if key in CLASSIFIER:
            continue
        if key not in source:
            initialised.append(key)
        elif source[key].shape != value.shape:
            initialised.append(key)
            mismatched[key] = f"{tuple(source[key].shape)} -> {tuple(value.shape)}"
        else:
            value.copy_(source[key])
            loaded.append(key)
    unused = sorted(k for k in source if k not in target)
    classifier, remapped, new = _classifier(target, source, source_labels, labels)
    if classifier != "initialised":
        loaded += [k for k in CLASSIFIER if k in target]
    else:
        initialised += [k for k in CLASSIFIER if k in target]
    return InitReport("", "", classifier, loaded, initialised, mismatched, unused, remapped, new)


def _classifier(target, source, source_labels, labels) -> tuple[str, list[str], list[str]]:
    """Copies the classifier rows of the labels both models have, when its input size matches."""
    w, b = CLASSIFIER
    if w not in source or b not in source or w not in target:
        return "initialised", [], list(labels)
    if source[w].shape[1:] != target[w].shape[1:] or len(source_labels) != len(source[w]):
        return "initialised", [], list(labels)
    if tuple(source_labels) == tuple(labels):
        target[w].copy_(source[w])
        target[b].copy_(source[b])
        return "kept", list(labels), []
    index = {name: i for i, name in enumerate(source_labels)}
    shared = [(i, index[name]) for i, name in enumerate(labels) if name in index]
    if not shared:
        return "initialised", [], list(labels)
    for ours, theirs in shared:
        target[w][ours].copy_(source[w][theirs])
        target[b][ours].copy_(source[b][theirs])
    taken = {i for i, _ in shared}
    remapped = [labels[i] for i in sorted(taken)]
    new = [name for i, name in enumerate(labels) if i not in taken]
    return "remapped", remapped, new


def frozen_modules(model: nn.Module, freeze: str) -> list[nn.Module]:
    """The backbone's modules that ``--freeze-backbone`` holds still: every stage (``all``), or
    the stages up to and including the one named; [] for ``""``."""
    if not freeze:
        return []
    backbone = model.backbone
    stages = list(backbone.spec.stages)
    if freeze == FREEZE_ALL:
        return [backbone]
    if freeze not in stages:
        raise UsageError(
            f"--freeze-backbone {freeze!r} is not a stage of the {backbone.name} backbone; give "
            f"{FREEZE_ALL} or one of: {', '.join(stages)}"
        )
    # the backbone's own map from a stage name to its modules (nn/backbones.py)
    layout = backbone._layout
    chosen = stages[: stages.index(freeze) + 1]
    return [getattr(backbone.net, attr) for stage in chosen for attr in layout[stage]]


def freeze(modules: list[nn.Module]) -> int:
    """Frozen parameters and BN statistics (eval mode): call after each ``model.train()``.
    Returns the number of parameters held still."""
    count = 0
    for module in modules:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
            count += p.numel()
    return count
