"""Peak resident memory of this process during a phase, sampled in a background thread.

Runtimes are measured side by side in one process, so the process-wide high-water mark
(``ru_maxrss``) cannot separate them; sampling RSS while a phase runs can.
"""

from __future__ import annotations

import os
import threading
import time


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; elsewhere the process's peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """``with PeakMemory() as m: ...``; then ``m.peak`` and ``m.start`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        import gc

        gc.collect()
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="ispan-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())
