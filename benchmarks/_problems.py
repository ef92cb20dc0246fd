"""Problem generators shared by the asv benchmarks (deterministic, seeded)."""

import numpy as np


def histograms(rng, shape, zeros=0):
    """Random positive histograms (last axis = bins) summing to one."""
    h = rng.random(shape) + 0.01
    if zeros:
        h[..., rng.choice(shape[-1], size=zeros, replace=False)] = 0.0
    return h / h.sum(-1, keepdims=True)


def euclidean_problem(n, m=None, *, dim=2, seed=0, dtype=np.float64):
    """Random 2-D points, Euclidean cost, random histograms: the exact-EMD benchmark problem."""
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    x = rng.random((n, dim))
    y = rng.random((m, dim))
    M = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    a = histograms(rng, (n,))
    b = histograms(rng, (m,))
    return a.astype(dtype), b.astype(dtype), M.astype(dtype)


def batch_problem(N, k, *, seed=0, dtype=np.float64):
    """N pairs of k-bin histograms with a shared squared-distance cost on a line, max 1."""
    rng = np.random.default_rng(seed)
    a = histograms(rng, (N, k))
    b = histograms(rng, (N, k))
    t = np.linspace(0.0, 1.0, k)
    M = (t[:, None] - t[None, :]) ** 2
    return a.astype(dtype), b.astype(dtype), M.astype(dtype)
