"""Each equation of the paper (arXiv:1808.01106) against a naive loop computation in numpy
(float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ispan_cli.nn import PyramidAttention, diversity_loss, interaction_loss

N, K, D = 2, 3, 5  # attention groups, segments per group, attention rows
CHANNELS = [3, 4, 6]  # C_j of the three pyramid levels
SIZES = [8, 4, 2]  # H_j = W_j; the last level is f_i


def _features(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(N * K, c, s, s, generator=g, dtype=torch.float64)
        for c, s in zip(CHANNELS, SIZES, strict=True)
    ]


def _layer(
    fusion: str = "sum", resample: str = "avg", output_norm: bool = False
) -> PyramidAttention:
    torch.manual_seed(1)
    layer = PyramidAttention(
        CHANNELS, D, resample=resample, fusion=fusion, output_norm=output_norm
    ).double()
    with torch.no_grad():  # unit-scale weights so the softmax is far from uniform
        for lin in layer.scores:
            lin.weight.normal_()
            lin.bias.normal_()
        if layer.level_weights is not None:
            layer.level_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
    return layer


def _naive_resample(f: np.ndarray, out: int, op: str) -> np.ndarray:
    """Block pooling by loops (sizes divide exactly here)."""
    nk, c, h, _ = f.shape
    s = h // out
    r = np.zeros((nk, c, out, out))
    for n in range(nk):
        for ch in range(c):
            for y in range(out):
                for x in range(out):
                    block = f[n, ch, y * s : (y + 1) * s, x * s : (x + 1) * s]
                    r[n, ch, y, x] = block.mean() if op == "avg" else block.max()
    return r


def _naive_flatten(f: np.ndarray) -> np.ndarray:
    """Rows ordered (k, y, x): X[n][k*h*w + y*w + x, c] = f[n*K + k, c, y, x]."""
    _, c, h, w = f.shape
    x_out = np.zeros((N, K * h * w, c))
    for n in range(N):
        for k in range(K):
            for y in range(h):
                for x in range(w):
                    x_out[n, k * h * w + y * w + x, :] = f[n * K + k, :, y, x]
    return x_out


def _naive_forward(layer: PyramidAttention, feats, fusion: str, resample: str):
    out = SIZES[-1]
    xs = [_naive_flatten(_naive_resample(f.numpy(), out, resample)) for f in feats]
    ys = []
    for lin, x in zip(layer.scores, xs, strict=True):
        w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
        y = np.zeros((N, D, x.shape[1]))
        for n in range(N):
            for m in range(D):
                for p in range(x.shape[1]):
                    y[n, m, p] = sum(w[m, c] * x[n, p, c] for c in range(x.shape[2])) + b[m]
        ys.append(y)
    if fusion == "sum":
        fused = sum(ys)
    elif fusion == "mean":
        fused = sum(ys) / len(ys)
    elif fusion == "max":
        fused = np.maximum.reduce(ys)
    else:
        lw = layer.level_weights.detach().numpy()
        fused = sum(wj * y for wj, y in zip(lw, ys, strict=True))
    a = np.zeros_like(fused)
    big_a = np.zeros_like(fused)
    for n in range(N):
        for m in range(D):
            e = np.exp(fused[n, m] - fused[n, m].max())
            a[n, m] = e / e.sum()
            big_a[n, m] = a[n, m] / np.sqrt((a[n, m] ** 2).sum())
    x_i = xs[-1]
    m_out = np.zeros((N, D, x_i.shape[2]))
    for n in range(N):
        for m in range(D):
            for c in range(x_i.shape[2]):
                m_out[n, m, c] = sum(big_a[n, m, p] * x_i[n, p, c] for p in range(x_i.shape[1]))
    return xs, ys, a, big_a, m_out


@pytest.mark.parametrize(
    ("fusion", "resample"),
    [("sum", "avg"), ("mean", "avg"), ("max", "max"), ("weighted", "avg")],
)
def test_forward_matches_naive_computation(fusion, resample):
    layer = _layer(fusion, resample)
    feats = _features()
    got = layer(feats, segments=K)
    xs, ys, a, big_a, m_out = _naive_forward(layer, feats, fusion, resample)
    np.testing.assert_allclose(got.X.numpy(), xs[-1], rtol=1e-10, atol=1e-12)  # flatten, R
    for y_got, y_ref in zip(got.Y, ys, strict=True):  # Y_j = W_j X_j^T + b_j
        np.testing.assert_allclose(y_got.detach().numpy(), y_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got.a.detach().numpy(), a, rtol=1e-9, atol=1e-12)  # softmax
    np.testing.assert_allclose(got.A.detach().numpy(), big_a, rtol=1e-9, atol=1e-12)  # L2
    np.testing.assert_allclose(got.M.detach().numpy(), m_out, rtol=1e-9, atol=1e-10)  # M = A X


def test_output_norm_divides_M_by_the_mean_row_sum_of_A():
    feats = _features()
    got = _layer(output_norm=True)(feats, segments=K)
    _, _, _, big_a, m_out = _naive_forward(_layer(), feats, "sum", "avg")
    for n in range(N):
        row_sum = sum(big_a[n, m, p] for m in range(D) for p in range(big_a.shape[2])) / D
        np.testing.assert_allclose(got.M[n].detach().numpy(), m_out[n] / row_sum, rtol=1e-9)


def test_bilinear_resample_matches_torchvision_resize():
    # An independent implementation of bilinear resizing (no antialias, half-pixel centres).
    from torchvision.transforms.v2.functional import resize

    layer = _layer(resample="bilinear")
    feats = _features()
    got = layer(feats, segments=K)
    ref = resize(feats[0], [SIZES[-1]] * 2, antialias=False)
    level0 = torch.from_numpy(_naive_flatten(ref.numpy()))
    expected_y = level0 @ layer.scores[0].weight.detach().T + layer.scores[0].bias.detach()
    torch.testing.assert_close(got.Y[0], expected_y.transpose(1, 2))


def _naive_interaction(big_a: np.ndarray, x: np.ndarray, normalize: bool) -> float:
    losses = []
    for n in range(big_a.shape[0]):
        a_n, x_n = big_a[n], x[n].copy()
        if normalize:
            for p in range(x_n.shape[0]):
                x_n[p] /= np.sqrt((x_n[p] ** 2).sum())
        d, p_count = a_n.shape
        # A X X^T A^T, element by element, then the paper's two sums
        ax = np.array(
            [
                [sum(a_n[m, p] * x_n[p, c] for p in range(p_count)) for c in range(x_n.shape[1])]
                for m in range(d)
            ]
        )
        q = np.array(
            [
                [sum(ax[m, c] * ax[n2, c] for c in range(x_n.shape[1])) for n2 in range(d)]
                for m in range(d)
            ]
        )
        g = np.array(
            [
                [sum(a_n[m, p] * a_n[n2, p] for p in range(p_count)) for n2 in range(d)]
                for m in range(d)
            ]
        )
        diag = sum(q[m, m] for m in range(d))
        off = sum(g[m, n2] ** 2 for m in range(d) for n2 in range(d) if m != n2)
        if normalize:
            diag /= d * p_count
            off /= d * (d - 1)
        losses.append(-diag + off)
    return float(np.mean(losses))


def _naive_diversity(a: np.ndarray, ys: list[np.ndarray], normalize: bool) -> float:
    losses = []
    for n in range(a.shape[0]):
        total, count = 0.0, 0
        for y in ys:
            for m in range(a.shape[1]):
                e = np.exp(y[n, m] - y[n, m].max())
                s = e / e.sum()
                for k in range(a.shape[2]):
                    delta = abs(a[n, m, k] - s[k])
                    total += 1.0 - delta**2
                    count += 1
        losses.append(np.sqrt(total / count if normalize else total))
    return float(np.mean(losses))


@pytest.mark.parametrize("normalize", [False, True])
def test_interaction_loss_matches_naive(normalize):
    out = _layer()(_features(3), segments=K)
    got = interaction_loss(out.A, out.X, normalize=normalize)
    ref = _naive_interaction(out.A.detach().numpy(), out.X.numpy(), normalize)
    assert got.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_diversity_loss_matches_naive(normalize):
    out = _layer()(_features(4), segments=K)
    got = diversity_loss(out.a, out.Y, normalize=normalize)
    ref = _naive_diversity(out.a.detach().numpy(), [y.detach().numpy() for y in out.Y], normalize)
    assert got.item() == pytest.approx(ref, rel=1e-9)


def test_normalized_losses_are_bounded_for_huge_features():
    feats = [f * 1e6 for f in _features(5)]
    out = _layer()(feats, segments=K)
    raw = interaction_loss(out.A, out.X, normalize=False)
    bounded = interaction_loss(out.A, out.X, normalize=True)
    assert raw.item() < -1e9  # the paper's first term grows with the features' scale
    assert -1.0 <= bounded.item() <= 1.0
    assert 0.0 <= diversity_loss(out.a, out.Y, normalize=True).item() <= 1.0
