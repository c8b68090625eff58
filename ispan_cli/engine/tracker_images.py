"""The trackers' pictures of an evaluation: the confusion matrix and the attention overlays of a
few fixed validation clips (:func:`ispan_cli.engine.trackers.attention_clips`), logged at the
epoch's last step, within a share of the run.

Drawing them takes about a second on the CPU (10-13% of a 9 s istpan_tiny epoch), so they keep
to :data:`IMAGE_SHARE` of the run: after pictures that took c seconds the next come once
c / IMAGE_SHARE seconds have passed (every evaluation on real datasets); the first evaluation's
and the last epoch's always.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ispan_cli.engine.report_images import Reading
from ispan_cli.engine.trackers import Trackers, attention_clips, attention_images

IMAGE_SHARE = 0.03
log = logging.getLogger("ispan.train")


class EvaluationImages:
    """Draws and logs an evaluation's pictures; remembers what the last ones cost."""

    def __init__(
        self, trackers: Trackers, items, classes, reading: Reading, warn: Callable[[str], None]
    ) -> None:
        self.trackers, self.items, self.classes = trackers, items, classes
        self.reading, self.warn = reading, warn
        self._clips: list | None = None  # chosen at the first drawing; [] once drawing failed
        self._done: tuple[float, float] | None = None  # (when the last ended, what they cost)

    def due(self, last: bool) -> bool:
        """Whether pictures now fit :data:`IMAGE_SHARE` of the time since the last ones."""
        if last or self._done is None:
            return True
        end, cost = self._done
        return time.perf_counter() - end >= cost / IMAGE_SHARE

    def log(self, step: int, confusion, attention: tuple[Any, Any, Any] | None) -> None:
        """The confusion matrix, and with ``attention`` = (model, spec, device) the overlays."""
        from ispan_cli.engine.evaluation import plot_confusion

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "confusion.png"
            plot_confusion(png, confusion, self.classes)
            self.trackers.image("val/confusion", png, step)
            if attention is not None:
                self._attention(Path(tmp), step, *attention)
        self._done = (time.perf_counter(), time.perf_counter() - start)

    def _attention(self, tmp: Path, step: int, model, spec, device) -> None:
        if self._clips is None:
            self._clips = attention_clips(self.items, self.classes)
        try:
            images = attention_images(model, spec, device, self._clips, self.reading)
        except Exception as exc:  # pictures for the trackers never stop training
            self._clips = []
            log.warning("attention images not drawn (%s); not tried again", exc)
            self.warn(f"warning: attention images for the trackers not drawn ({exc})")
            return
        for i, (caption, jpeg) in enumerate(images):
            path = tmp / f"attention_{i}.jpg"
            path.write_bytes(jpeg)
            log.info("attention image val/attention/%d: %s", i, caption)
            self.trackers.image(f"val/attention/{i}", path, step)
