"""From the model's attention matrices to the mass each input position receives.

A row of A distributes attention over all K*H*W positions; the column sums say how much of the
stacked attention each position received. Normalised to sum to 1 over all K*H*W positions, so
the sum over one frame is that frame's share of the attention (ISTPAN's own answer to "which
moments mattered", no gradients involved).
"""

from __future__ import annotations

import numpy as np


def attention_mass(maps: np.ndarray) -> np.ndarray:
    """(N, d, K, h, w) attention rows -> (N, K, h, w) column sums, each clip summing to 1."""
    mass = np.asarray(maps, np.float64).sum(axis=1)  # sum over the d rows
    total = mass.reshape(len(mass), -1).sum(axis=1)
    return (mass / total[:, None, None, None]).astype(np.float32)
