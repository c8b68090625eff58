"""What a run leaves on disk besides checkpoints: metrics logs, curves, the model card."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ispan_cli.data.check import REASONS
from ispan_cli.model_folder import atomic_open, atomic_write_text

METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
CURVES_PNG = "curves.png"


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """Rewrites metrics.csv and metrics.jsonl from the whole history (one row per epoch), each
    atomically, so a resumed run never leaves duplicated or torn rows."""
    if not history:
        return
    columns = list(dict.fromkeys(k for row in history for k in row))
    with atomic_open(out / METRICS_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    atomic_write_text(
        out / METRICS_JSONL, "".join(json.dumps(_jsonable(row)) + "\n" for row in history)
    )


def plot_curves(out: Path, history: list[dict[str, Any]]) -> Path | None:
    """curves.png: training loss and train/validation top-1 accuracy per epoch."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="total")
    ax_loss.plot(epochs, [row["train_ce"] for row in history], marker=".", label="cross-entropy")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [row["train_top1"] for row in history], marker="o", label="train top-1")
    val = [(row["epoch"], row["val_top1"]) for row in history if _finite(row.get("val_top1"))]
    if val:
        ax_acc.plot(*zip(*val, strict=True), marker="s", label="validation top-1 (video)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="accuracy")
    ax_acc.legend()
    fig.tight_layout()
    path = out / CURVES_PNG
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def model_card(
    name: str,
    arch: str,
    classes: tuple[str, ...],
    command: str,
    protocol: str,
    metrics: dict[str, Any],
    config: dict[str, Any],
    synthetic: bool,
    skipped: dict[str, Any] | None = None,
    sections: dict[str, str] | None = None,
) -> str:
    """README.md of a trained model folder: what it is, how it was made, how it was measured.

    skipped: ``SkipReport.to_dict()``, the listed videos the run could not use and why.
    sections: more sections, title -> text (where the weights came from, why it stopped).
    """
    tags = ["ispan", "istpan", "video-classification"] + (["synthetic"] if synthetic else [])
    lines = [
        "---",
        "library_name: ispan",
        "pipeline_tag: video-classification",
        f"tags: [{', '.join(tags)}]",
        "---",
        "",
        f"# {name}",
        "",
    ]
    if synthetic:
        lines += [
            "**Trained on ispan's synthetic dataset.** Its classes are synthetic (a yellow "
            "object's shape and motion among distractors), not human actions: on real videos "
            "its predictions mean nothing.",
            "",
        ]
    top1 = metrics.get("top1")
    lines += [
        f"`{arch}` trained with `ispan train` on **{config['dataset']}** (split "
        f"{config['split']}), {len(classes)} classes: {', '.join(classes[:10])}"
        + (" ..." if len(classes) > 10 else "")
        + ".",
        "",
        "## How it was made",
        "",
        "```bash",
        command or "(command not recorded)",
        "```",
        "",
        f"Seed {config['seed']}, {config['epochs']} epochs, global batch {config['batch_size']}, "
        f"lr {config['lr']} ({config['schedule']}), weight decay {config['weight_decay']}, "
        f"dropout {config['dropout']}, K={config['segments']} segments, pretrained backbone: "
        f"{config['pretrained']}.",
        "",
        "## Evaluation",
        "",
        f"Protocol: {protocol}.",
        f"Video-level, K={config['segments']} TSN centre frames, 1 centre crop, logits averaged "
        f"over segments; measured on {metrics.get('videos', 0)} validation videos at epoch "
        f"{metrics.get('epoch', '?')} (the best epoch).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 | {_pct(top1)} |",
        f"| top-5 | {_pct(metrics.get('top5'))} |",
        f"| mean class accuracy | {_pct(metrics.get('mean_class_accuracy'))} |",
        "",
        "Labels, preprocessing, sampling and these metrics are in `config.json`.",
        "",
    ]
    for title, text in (sections or {}).items():
        lines += [f"## {title}", "", text[0].upper() + text[1:] + ".", ""]
    if skipped is not None and not synthetic:
        lines += ["## Data", "", _skipped_text(skipped), ""]
    return "\n".join(lines)


def _skipped_text(skipped: dict[str, Any]) -> str:
    listed, n = skipped.get("listed", 0), skipped.get("skipped", 0)
    if not n:
        return f"All {listed} listed videos (training and validation) were used."
    reasons = ", ".join(
        f"{count} {REASONS.get(reason, reason)}"
        for reason, count in skipped.get("by_reason", {}).items()
    )
    return (
        f"{n} of the {listed} listed videos (training and validation, "
        f"{100 * n / max(listed, 1):.1f}%) were skipped: {reasons}. The run folder's "
        "`data_check.json` names each file and its reason."
    )


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if _finite(value) else "n/a"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return "" if value is None else value


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
