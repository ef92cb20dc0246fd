"""Tests of otcore._network_simplex: the Python wrappers of the C network simplex.

The solver's answers are tested through ``emd``/``emd2`` in tests/test_exact.py; here:
the wrappers' checks (nothing out of shape or out of range ever reaches the C code),
the raw outputs against scipy's HiGHS LP, and calls from several threads at once (the
GIL is released, no state is shared between calls).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from otcore._network_simplex import certify, solve_batch


def _lp_cost(a, b, M):
    n, m = M.shape
    Aeq = np.zeros((n + m, n * m))
    for i in range(n):
        Aeq[i, i * m : (i + 1) * m] = 1
    for j in range(m):
        Aeq[n + j, j::m] = 1
    res = linprog(M.ravel(), A_eq=Aeq, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.status == 0
    return res.fun


def _pairs(rng, N, n, m, zeros=0.3):
    A = rng.random((N, n))
    B = rng.random((N, m))
    A[rng.random((N, n)) < zeros] = 0
    B[rng.random((N, m)) < zeros] = 0
    A[:, 0] += 0.5
    B[:, -1] += 0.5
    A /= A.sum(1, keepdims=True)
    B /= B.sum(1, keepdims=True)
    return A, B


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(1, 3),
    n=st.integers(1, 9),
    m=st.integers(1, 9),
    ties=st.booleans(),
)
def test_raw_outputs_against_linprog(seed, N, n, m, ties):
    rng = np.random.default_rng(seed)
    A, B = _pairs(rng, N, n, m)
    M = rng.integers(0, 3, (n, m)).astype(float) if ties else rng.random((n, m))
    f, g, rows, cols, vals, pivots, status = solve_batch(A, B, M)
    assert rows.shape == cols.shape == vals.shape == (N, n + m - 1)
    assert np.all(status == 0) and np.all(pivots >= 0)
    cost, viol, gap, resid = certify(A, B, M, f, g, rows, cols, vals)
    for p in range(N):
        P = np.zeros((n, m))
        np.add.at(P, (rows[p], cols[p]), vals[p])
        assert P.min() >= 0
        np.testing.assert_allclose(P.sum(1), A[p], rtol=0, atol=1e-15)
        np.testing.assert_allclose(P.sum(0), B[p], rtol=0, atol=1e-15)
        np.testing.assert_allclose(cost[p], _lp_cost(A[p], B[p], M), rtol=1e-9, atol=1e-12)
        # the potentials are completed on zero bins: dual feasible on all of M
        assert np.all(np.isfinite(f[p])) and np.all(np.isfinite(g[p]))
        assert (f[p][:, None] + g[p][None, :] - M).max() <= 1e-12
    assert np.all(viol <= 1e-12) and np.all(gap <= 1e-12) and np.all(resid <= 1e-15)


def test_threads_give_the_sequential_answers():
    rng = np.random.default_rng(3)
    x = rng.random((60, 2))
    M = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    jobs = [_pairs(np.random.default_rng(s), 20, 60, 60) for s in range(8)]
    seq = [solve_batch(A, B, M) for A, B in jobs]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(lambda ab: solve_batch(ab[0], ab[1], M), jobs))
    for r1, r2 in zip(seq, par):
        for x1, x2 in zip(r1, r2):
            np.testing.assert_array_equal(x1, x2)


def test_a_side_without_mass_is_a_status_not_a_crash():
    A = np.array([[0.5, 0.5], [0.0, 0.0]])
    B = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    f, g, rows, cols, vals, pivots, status = solve_batch(A, B, np.ones((2, 3)))
    assert status.tolist() == [0, 2]
    assert np.all(vals[1] == 0) and np.all(np.isnan(f[1]))


def test_empty_batch_and_max_iter():
    out = solve_batch(np.zeros((0, 3)), np.zeros((0, 4)), np.ones((3, 4)))
    assert [x.shape[0] for x in out] == [0] * 7
    rng = np.random.default_rng(0)
    A, B = _pairs(rng, 1, 30, 30, zeros=0)
    *_, pivots, status = solve_batch(A, B, rng.random((30, 30)), max_iter=2)
    assert status.tolist() == [1] and pivots.tolist() == [2]


@pytest.mark.parametrize(
    ("A", "B", "M"),
    [
        (np.ones((2, 3)), np.ones((2, 4)), np.ones((4, 3))),  # M transposed
        (np.ones((2, 3)), np.ones((1, 4)), np.ones((3, 4))),  # batch sizes differ
        (np.ones(3), np.ones(4), np.ones((3, 4))),  # not batched
    ],
)
def test_solve_batch_rejects_mismatched_shapes(A, B, M):
    with pytest.raises(ValueError, match="solve_batch"):
        solve_batch(A, B, M)


def test_certify_rejects_indices_outside_the_cost_matrix():
    A = np.array([[0.5, 0.5]])
    B = np.array([[0.5, 0.5]])
    M = np.ones((2, 2))
    f, g, rows, cols, vals, *_ = solve_batch(A, B, M)
    bad = rows.copy()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match="outside"):
        certify(A, B, M, f, g, bad, cols, vals)
    bad = cols.copy()
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="outside"):
        certify(A, B, M, f, g, rows, bad, vals)
    with pytest.raises(ValueError, match="f must be"):
        certify(A, B, M, f.astype(np.float32), g, rows, cols, vals)
    with pytest.raises(ValueError, match="vals has the wrong shape"):
        certify(A, B, M, f, g, rows, cols, vals[:, :1])
    with pytest.raises(ValueError, match="M has the wrong shape"):
        certify(A, B, M.T[:1], f, g, rows, cols, vals)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_a_batch_split_over_threads_equals_one_call(monkeypatch, workers):
    import otcore._network_simplex as ns

    rng = np.random.default_rng(3)
    N, n, m = 301, 9, 7
    A = rng.random((N, n)) * (rng.random((N, n)) > 0.3)
    A[:, 0] += 0.1
    B = rng.random((N, m))
    B *= (A.sum(1) / B.sum(1))[:, None]
    M = np.round(rng.random((n, m)) * 3)  # ties
    monkeypatch.setattr(ns, "_workers", lambda N: 1)
    one = solve_batch(A, B, M)
    monkeypatch.setattr(ns, "_workers", lambda N: workers)
    split = solve_batch(A, B, M)
    for x, y in zip(one, split):
        np.testing.assert_array_equal(x, y)
