"""Unbalanced Sinkhorn (``sinkhorn(..., reg_m=...)``) against POT and closed-form limits.

References: POT's ``ot.sinkhorn_unbalanced`` (``reg_type="kl"``: entropy relative
to a (x) b), run to a 1e-16 stopping threshold; the limits reg_m -> 0 (the plan
a_i b_j exp(-M_ij / reg)) and reg_m -> inf (balanced Sinkhorn); finite
differences of ``reg_cost`` for ``grad``.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import cdist

from otcore import PointCloud, sinkhorn, sinkhorn2

ot = pytest.importorskip("ot")


def pot_unbalanced(a, b, M, reg, reg_m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P, log = ot.sinkhorn_unbalanced(a, b, M, reg, reg_m, numItermax=500_000, stopThr=1e-16, log=True)
    return P, log


def mass_terms(a, b, P, reg, reg_m):
    """What POT's ``total_cost`` (KL without the ``- p + q`` terms) leaves out of the objective."""
    ra, rb = reg_m if isinstance(reg_m, tuple) else (reg_m, reg_m)
    t = reg * (a.sum() * b.sum() - P.sum())
    if ra != math.inf:
        t += ra * (a.sum() - P.sum())
    if rb != math.inf:
        t += rb * (b.sum() - P.sum())
    return t


def problem(rng, n, m):
    x, y = rng.random((n, 2)), rng.random((m, 2))
    a = rng.random(n) + 0.05
    b = 2.0 * (rng.random(m) + 0.05)  # unequal total masses
    return a, b, cdist(x, y, "sqeuclidean"), x, y


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 8),
    m=st.integers(1, 8),
    reg=st.sampled_from([0.05, 0.2, 1.0]),
    reg_m=st.sampled_from([0.1, 1.0, 10.0, (0.5, 2.0), (math.inf, 1.0), (1.0, math.inf)]),
    seed=st.integers(0, 2**16),
)
def test_matches_pot(n, m, reg, reg_m, seed):
    rng = np.random.default_rng(seed)
    a, b, M, _, _ = problem(rng, n, m)
    if isinstance(reg_m, tuple) and math.inf in reg_m:
        b = b * a.sum() / b.sum()  # one exact marginal: POT needs no mass match, but keep it feasible
    P, log = pot_unbalanced(a, b, M, reg, reg_m)
    res = sinkhorn(a, b, M, reg, reg_m=reg_m, tol=1e-13, warn=False)
    np.testing.assert_allclose(res.plan, P, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.cost, log["cost"], rtol=1e-10, atol=1e-12)
    # reg_cost is the minimised objective (generalised KL); POT's "total" omits the mass terms
    np.testing.assert_allclose(res.reg_cost - mass_terms(a, b, P, reg, reg_m), log["total_cost"], rtol=1e-9, atol=1e-10)
    assert np.all(np.isfinite(res.f)) and np.all(np.isfinite(res.g))


def test_sinkhorn2_is_pot_linear_cost(rng):
    a, b, M, _, _ = problem(rng, 6, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ot.sinkhorn_unbalanced2(a, b, M, 0.1, 1.0, numItermax=500_000, stopThr=1e-16)
    np.testing.assert_allclose(sinkhorn2(a, b, M, 0.1, reg_m=1.0, tol=1e-13), ref, rtol=1e-10)


def test_balanced_limit(rng):
    """reg_m -> inf: the balanced Sinkhorn plan (equal masses)."""
    a, b, M, _, _ = problem(rng, 7, 6)
    b = b * a.sum() / b.sum()
    bal = sinkhorn(a, b, M, 0.1, tol=1e-13)
    prev = np.inf
    # the mass mode of the damped iteration contracts like (rho / (rho + reg))^2: slow for large rho
    for rho in (1.0, 1e1, 1e2):
        d = np.abs(sinkhorn(a, b, M, 0.1, reg_m=rho, tol=1e-11, n_iter=50_000).plan - bal.plan).max()
        assert d < 20 * 0.1 / rho * a.sum() and d < prev
        prev = d
    exact = sinkhorn(a, b, M, 0.1, reg_m=math.inf, tol=1e-13)
    np.testing.assert_allclose(exact.plan, bal.plan, atol=1e-12)


def test_zero_limit(rng):
    """reg_m -> 0: no transport constraint left, the plan is a_i b_j exp(-M_ij / reg)."""
    a, b, M, _, _ = problem(rng, 5, 4)
    P = sinkhorn(a, b, M, 0.5, reg_m=1e-9, tol=1e-13).plan
    np.testing.assert_allclose(P, a[:, None] * b[None, :] * np.exp(-M / 0.5), rtol=1e-7)


def test_batched_equals_pairs(rng):
    a, b, M, _, _ = problem(rng, 6, 5)
    A = np.stack([a, 2 * a, a[::-1]])
    res = sinkhorn(A, b, M, 0.1, reg_m=(0.5, 2.0), tol=1e-12)
    for k in range(3):
        one = sinkhorn(A[k], b, M, 0.1, reg_m=(0.5, 2.0), tol=1e-12)
        np.testing.assert_allclose(res.plan[k], one.plan, atol=1e-12)
        np.testing.assert_allclose(res.reg_cost[k], one.reg_cost, rtol=1e-11)


def test_grad_finite_differences(rng):
    """``grad`` = d reg_cost / d a (unnormalised directions: the masses are free)."""
    a, b, M, _, _ = problem(rng, 5, 6)
    for reg_m in (1.0, (0.3, 3.0), (math.inf, 1.0)):
        res = sinkhorn(a, b, M, 0.1, reg_m=reg_m, tol=1e-13)
        h = 1e-6
        for i in range(5):
            e = np.zeros(5)
            e[i] = h
            fd = (sinkhorn(a + e, b, M, 0.1, reg_m=reg_m, tol=1e-13).reg_cost
                  - sinkhorn(a - e, b, M, 0.1, reg_m=reg_m, tol=1e-13).reg_cost) / (2 * h)
            np.testing.assert_allclose(res.grad[i], fd, rtol=1e-6, atol=1e-8)


def test_zero_mass_bins_finite(rng):
    a, b, M, _, _ = problem(rng, 5, 6)
    a[1] = 0.0
    b[[0, 3]] = 0.0
    res = sinkhorn(a, b, M, 0.01, reg_m=0.5)
    assert np.all(np.isfinite(res.f)) and np.all(np.isfinite(res.g)) and np.isfinite(res.reg_cost)
    assert np.all(res.plan[1] == 0) and np.all(res.plan[:, [0, 3]] == 0)
    assert np.all(np.isfinite(res.grad))


@pytest.mark.parametrize("memory", [1 << 14, 1 << 26])  # streamed / built once within the budget
def test_pointcloud_equals_dense(memory, rng):
    a, b, M, x, y = problem(rng, 40, 30)
    lazy = sinkhorn(a, b, PointCloud(x, y, memory=memory), 0.02, reg_m=(0.5, 2.0))
    dense = sinkhorn(a, b, M, 0.02, reg_m=(0.5, 2.0))
    np.testing.assert_allclose(lazy.reg_cost, dense.reg_cost, rtol=1e-9)
    np.testing.assert_allclose(lazy.cost, dense.cost, rtol=1e-9)


def test_reg_m_validation(rng):
    a, b, M, _, _ = problem(rng, 3, 3)
    with pytest.raises(ValueError, match="reg_m must be > 0"):
        sinkhorn(a, b, M, 0.1, reg_m=-1.0)
    with pytest.raises(ValueError, match="pair"):
        sinkhorn(a, b, M, 0.1, reg_m=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="same total mass"):  # balanced still checks the masses
        sinkhorn(a, b, M, 0.1)
