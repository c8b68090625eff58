"""Training recipes chosen by situation: the defaults of the settings that depend on where the
weights start (a pretrained backbone or ``--init-from``, or from scratch) and on the model's
size. The paper's recipe (lr 0.001, dropout 0.8) is for fine-tuning an ImageNet ResNet-50; from
scratch its training loss barely moves (issue 17), so scratch runs get their own.

Explicit settings (command line, ``--config`` file) always win; every recipe value is recorded
with where it came from, printed at the start of the run and written into the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What a recipe sets when the run does not: TrainConfig fields.
RECIPE_FIELDS = ("lr", "dropout", "warmup_epochs")
# Backbones small enough to train from scratch with a high learning rate.
SMALL_BACKBONES = frozenset({"tiny", "resnet18"})


@dataclass(frozen=True)
class Recipe:
    name: str
    why: str
    values: dict[str, Any]


RECIPES = {
    "finetune": Recipe(
        "finetune",
        "pretrained weights: the paper's TSN-style fine-tuning recipe (arXiv:1808.01106, ImageNet "
        "ResNet-50 on UCF101/HMDB51)",
        {"lr": 0.001, "dropout": 0.8, "warmup_epochs": 0.0},
    ),
    "scratch-small": Recipe(
        "scratch-small",
        "random weights, small backbone: measured on the synthetic dataset (BENCHMARKS.md, "
        "'Recipes')",
        {"lr": 0.02, "dropout": 0.2, "warmup_epochs": 1.0},
    ),
    "scratch-large": Recipe(
        "scratch-large",
        "random weights, large backbone: a lower rate with a longer warm-up (not measured by "
        "ispan: no large run fits here; prefer pretrained weights)",
        {"lr": 0.01, "dropout": 0.5, "warmup_epochs": 2.0},
    ),
}


def choose_recipe(settings: dict[str, Any]) -> Recipe:
    """The recipe for a run's settings (TrainConfig fields, defaults filled in)."""
    from ispan_cli.nn.registry import get_variant

    if settings.get("init_from") or settings.get("pretrained", "imagenet") != "none":
        return RECIPES["finetune"]
    backbone = get_variant(settings.get("arch", "istpan_resnet50")).config.backbone
    return RECIPES["scratch-small" if backbone in SMALL_BACKBONES else "scratch-large"]


def apply_recipe(
    settings: dict[str, Any], origins: dict[str, str], defaults: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``settings`` with each recipe field it lacks filled from the recipe, and ``origins``
    (field -> where its value came from) extended to say so."""
    recipe = choose_recipe({**defaults, **settings})
    settings, origins = dict(settings), dict(origins)
    for key in RECIPE_FIELDS:
        if key not in settings:
            settings[key] = recipe.values[key]
            origins[key] = f"recipe {recipe.name}"
    if (
        settings.get("modality") == "flow"
        and recipe.name == "finetune"
        and (origins.get("dropout") == f"recipe {recipe.name}")
    ):  # TSN's flow stream, fine-tuned from cross-modality ImageNet weights, drops 0.7
        from ispan_cli.nn.flow import FLOW_DROPOUT  # here: ispan_cli.nn imports torch

        settings["dropout"] = FLOW_DROPOUT
        origins["dropout"] = f"recipe {recipe.name}, flow stream"
    settings["recipe"] = recipe.name
    return settings, origins


def describe(cfg: Any) -> str:
    """One line: the recipe and where each of its fields came from."""
    recipe = RECIPES.get(cfg.recipe)
    shown = ", ".join(
        f"{key} {getattr(cfg, key):g} ({cfg.origins.get(key, 'default')})" for key in RECIPE_FIELDS
    )
    why = f" ({recipe.why})" if recipe else ""
    return f"recipe {cfg.recipe or 'none'}{why}: {shown}"
