"""Rendering training events with rich (stderr). Picklable: it is sent to the rank-0 worker
when workers are launched, and builds its console there."""

from __future__ import annotations

import math
from typing import Any


class TrainProgress:
    """A progress bar per epoch and for evaluation, and one line per finished epoch."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Any = None
        self._task: Any = None
        self._label = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"quiet": self.quiet, "_progress": None, "_task": None, "_label": ""}

    def __call__(self, event) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from ispan_cli.terminal import markup

        if self.quiet:
            return
        console = Console(stderr=True)
        d = event.data
        if event.kind == "start":
            self._stop()  # the check's bar
            what = "resuming" if d["resumed"] else "training"
            console.print(
                f"{what} on {d['device']} x{d['world']}: {d['train_videos']} training and "
                f"{d['val_videos']} validation videos, {d['steps']} steps per epoch"
            )
            return
        if event.kind == "message":
            if self._progress is not None:  # above the live bar, not through it
                console = self._progress.console
            # the text names files: data, never markup
            console.print(f"[dim]{markup(d['text'])}[/dim]", highlight=False, markup=True)
            return
        if event.kind in ("check", "step", "eval"):
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                )
                self._progress.start()
            label = {"check": "checking videos", "eval": "evaluating"}.get(
                event.kind, f"epoch {event.epoch + 1}"
            )
            info = f"loss {d['loss']:.3f} lr {d['lr']:.2e}" if event.kind == "step" else ""
            if self._task is None or self._label != label:
                if self._task is not None:
                    self._progress.remove_task(self._task)
                self._task = self._progress.add_task(label, total=event.steps, info=info)
                self._label = label
            self._progress.update(self._task, completed=event.step, info=info)
            return
        self._stop()
        if event.kind == "epoch":
            val = d.get("val_top1")
            shown = f"val top-1 {100 * val:.1f}%" if _finite(val) else "no validation"
            console.print(
                f"epoch {d['epoch']}: loss {d['train_loss']:.3f}, train top-1 "
                f"{100 * d['train_top1']:.1f}%, {shown}, {d['clips_per_s']:.1f} clips/s, "
                f"data wait {100 * d['data_wait_share']:.0f}%",
                highlight=False,
            )

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress, self._task = None, None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
