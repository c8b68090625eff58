"""The best model of a run as a model folder that classify, evaluate, export and visualize load:
config.json (labels, preprocessing, sampling, metrics, training), model.safetensors, README.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ispan_cli.data.items import DatasetSplit
from ispan_cli.data.skips import SkipReport
from ispan_cli.engine.config import TrainConfig
from ispan_cli.engine.report import model_card
from ispan_cli.model_folder import CARD_FILE, atomic_write_text
from ispan_cli.video.flow_spec import FlowSpec
from ispan_cli.video.preprocess import PreprocessSpec
from ispan_cli.video.sampling import SamplingSpec


def export_best(
    model,
    folder: Path,
    cfg: TrainConfig,
    data: DatasetSplit,
    spec: PreprocessSpec,
    row: dict[str, Any],
    skips: SkipReport | None = None,
    notes: dict[str, str] | None = None,
    flow: FlowSpec | None = None,
) -> Path:
    """Writes the model folder (each file atomically) with the validation metrics of ``row``;
    the card says how many listed videos the run skipped and why (``skips``). ``flow``: a flow
    stream's FlowSpec, written as the ``"flow"`` section."""
    from ispan_cli.nn import save_model

    metrics = _metrics(cfg, data, row)
    extra = {
        "preprocessing": spec.to_dict(),
        "sampling": SamplingSpec(cfg.segments).to_dict(),
        "metrics": metrics,
        "training": {**cfg.to_dict(), "data_root": cfg.data_root and str(cfg.data_root)},
    }
    if flow is not None:
        extra["flow"] = flow.to_dict()
    was_training = model.training
    save_model(model, folder, extra=extra)
    model.train(was_training)
    write_card(folder, cfg, data, row, skips, notes)
    return folder


def write_card(
    folder: Path,
    cfg: TrainConfig,
    data: DatasetSplit,
    row: dict[str, Any],
    skips: SkipReport | None = None,
    notes: dict[str, str] | None = None,
) -> None:
    """The model folder's README.md for the model measured in ``row``; ``notes``: sections to
    add, title -> text (see :func:`ispan_cli.engine.report.model_card`)."""
    card = model_card(
        folder.name if folder.name != "best" else f"{cfg.arch} ({cfg.dataset})",
        cfg.arch,
        data.classes,
        cfg.command,
        data.protocol,
        _metrics(cfg, data, row),
        cfg.to_dict(),
        synthetic=cfg.dataset == "synthetic",
        skipped=skips.to_dict() if skips is not None else None,
        sections=notes,
    )
    atomic_write_text(folder / CARD_FILE, card)


def _metrics(cfg: TrainConfig, data: DatasetSplit, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": cfg.dataset,
        "split": cfg.split,
        "subset": "validation",
        "protocol": data.protocol,
        "views": f"K={cfg.segments} TSN centre frames x 1 centre crop",
        "epoch": row.get("epoch"),
        "videos": row.get("val_videos", 0),
        "top1": _num(row.get("val_top1")),
        "top5": _num(row.get("val_top5")),
        "mean_class_accuracy": _num(row.get("val_mean_class")),
    }


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
