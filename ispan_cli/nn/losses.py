"""The auxiliary losses of ISTPAN (arXiv:1808.01106; the README's "The model").

Both take the tensors of ``AttentionOutput`` and return the mean over the N attention groups.

Normalisation [ours], on by default (``loss_normalize``): the interaction loss's first term grows
with the features' scale without bound, so inside the loss the rows of X (positions) are
L2-normalised and each term is divided by its element count::

    l_int = - trace(A X^ X^T A^T) / (d * P) + sum_offdiag((A A^T)^2) / (d * (d - 1))

With unit rows in A and X^ each term lies in [0, 1]. The diversity loss is divided by its element
count inside the square root: ``sqrt(mean(1 - delta^2))`` in [0, 1]. Unnormalised, both are
exactly the paper's formulas.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def interaction_loss(A: Tensor, X: Tensor, normalize: bool = True) -> Tensor:
    """-sum_diag(A X X^T A^T) + sum_offdiag((A A^T)^2), A (N, d, P), X (N, P, C)."""
    if normalize:
        X = F.normalize(X, p=2.0, dim=-1)
    d, p = A.shape[1], A.shape[2]
    captured = torch.bmm(A, X).pow(2).sum(dim=(1, 2))  # trace(A X X^T A^T) = ||A X||_F^2
    gram = torch.bmm(A, A.transpose(1, 2))  # (N, d, d)
    offdiag = gram.pow(2).sum(dim=(1, 2)) - torch.diagonal(gram, dim1=1, dim2=2).pow(2).sum(1)
    if normalize:
        captured = captured / (d * p)
        offdiag = offdiag / max(d * (d - 1), 1)
    return (offdiag - captured).mean()


def diversity_loss(a: Tensor, level_scores: Sequence[Tensor], normalize: bool = True) -> Tensor:
    """sqrt(sum_j sum_m sum_k (1 - |a_mk - softmax(Y_j)_mk|^2)), a and Y_j (N, d, P)."""
    total = a.new_zeros(a.shape[0])
    for y in level_scores:
        delta = (a - y.softmax(dim=-1)).abs()
        total = total + (1.0 - delta.pow(2)).sum(dim=(1, 2))
    if normalize:
        total = total / (len(level_scores) * a.shape[1] * a.shape[2])
    # clamp: sqrt has an infinite slope at 0, reachable only in the degenerate one-position case
    return total.clamp_min(1e-12).sqrt().mean()
