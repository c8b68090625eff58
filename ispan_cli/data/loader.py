"""The one way to build a DataLoader: workers are forked only from a process with no garbage.

A DataLoader's worker processes are forked from this one. A decoder left for the garbage
collector here still holds FFmpeg's frame threads, which a forked child does not have: when the
child's collector frees it, ``avcodec_free_context`` waits for those threads forever and the
epoch hangs (found with ``--log mlflow --workers 2``). The decoders came from every video the
trainer read itself, e.g. the trackers' attention clips: the PyAV reader's frame generator held
the reader in a cycle, so its codec context outlived ``close()``. That cycle is gone
(``video/pyav_backend.py``; ``tests/video/test_no_reference_cycles.py``). Collecting before the
fork stays, for cycles elsewhere: an exception kept in a cycle keeps the frames of its
traceback, and with them any decoder they held.
"""

from __future__ import annotations

import gc
from typing import Any


def data_loader(dataset: Any, **kwargs: Any):
    """``torch.utils.data.DataLoader(dataset, **kwargs)``, after a collection when it forks."""
    from torch.utils.data import DataLoader

    if kwargs.get("num_workers", 0) > 0:
        gc.collect()
    return DataLoader(dataset, **kwargs)
