"""The one way to build a DataLoader: workers are forked only from a process with no garbage.

A DataLoader's worker processes are forked from this one. A decoder left for the garbage
collector here (a PyAV container in a reference cycle, e.g. from drawing attention for a
tracker or from an exception's traceback) still holds FFmpeg's frame threads, which a forked
child does not have: when the child's collector frees it, ``avcodec_free_context`` waits for
those threads forever and the epoch hangs (found with ``--log mlflow --workers 2``). Collecting
before the fork frees such objects here, where their threads exist.
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
