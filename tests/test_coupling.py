"""Kantorovich/Monge utilities: identities, POT/scipy references, namespaces, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from otcore._coupling import (
    assignment_plan,
    barycentric_map,
    independent_coupling,
    is_coupling,
    marginals,
    monge_cost,
    transport_cost,
)
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)


def test_independent_coupling_is_a_coupling():
    rng = np.random.default_rng(0)
    a, b = random_histograms(rng, (6,)), random_histograms(rng, (4,))
    P = independent_coupling(a, b)
    np.testing.assert_allclose(P, np.outer(a, b), rtol=1e-15)
    assert is_coupling(P, a, b) is True
    ra, rb = marginals(P)
    np.testing.assert_allclose(ra, a, rtol=1e-14)
    np.testing.assert_allclose(rb, b, rtol=1e-14)


def test_independent_coupling_batch_and_mass():
    rng = np.random.default_rng(1)
    a = random_histograms(rng, (3, 5)) * 2.0
    b = random_histograms(rng, (4,)) * 2.0
    P = independent_coupling(a, b)
    assert P.shape == (3, 5, 4)
    ok = is_coupling(P, a, b, atol=1e-12)
    assert isinstance(ok, np.ndarray) and ok.shape == (3,) and ok.all()
    np.testing.assert_allclose(P[1], np.outer(a[1], b) / 2.0, rtol=1e-14)


def test_is_coupling_rejects():
    a = np.array([0.5, 0.5])
    b = np.array([0.25, 0.75])
    P = independent_coupling(a, b)
    assert is_coupling(P + 1e-3 * np.array([[1, -1], [-1, 1]]), a, b) is True  # same marginals, still >= 0
    Q = P.copy()
    Q[0, 0] += 1e-6
    assert is_coupling(Q, a, b) is False
    assert is_coupling(Q, a, b, atol=1e-5) is True
    R = np.array([[0.5, 0.0], [-0.25, 0.75]])  # right marginals, one negative entry
    assert is_coupling(R, np.array([0.5, 0.5]), np.array([0.25, 0.75])) is False
    S = P.copy()
    S[1, 1] = np.nan
    assert is_coupling(S, a, b) is False
    assert is_coupling(P, a, b * 2) is False  # unequal masses: no coupling exists
    batch = np.stack([P, Q, R])
    np.testing.assert_array_equal(is_coupling(batch, a, b), [True, False, False])


def test_is_coupling_of_exact_plans_pot():
    rng = np.random.default_rng(2)
    a, b = random_histograms(rng, (7,)), random_histograms(rng, (9,))
    M = rng.random((7, 9))
    P = ot.emd(a, b, M)
    assert is_coupling(P, a, b, atol=1e-12)
    np.testing.assert_allclose(transport_cost(P, M), ot.emd2(a, b, M), rtol=1e-12)


def test_marginals_batch():
    rng = np.random.default_rng(3)
    P = rng.random((2, 3, 4, 5))
    r, c = marginals(P)
    np.testing.assert_allclose(r, P.sum(-1))
    np.testing.assert_allclose(c, P.sum(-2))
    assert r.shape == (2, 3, 4) and c.shape == (2, 3, 5)


def test_transport_cost_batch_and_zero_d():
    rng = np.random.default_rng(4)
    P = rng.random((3, 4, 5))
    M = rng.standard_normal((4, 5))
    np.testing.assert_allclose(transport_cost(P, M), (P * M).sum((-2, -1)), rtol=1e-13)
    c = transport_cost(P[0], M)
    assert isinstance(c, np.ndarray) and c.shape == ()
    assert transport_cost(P.astype(np.float32), M.astype(np.float32)).dtype == np.float32
    assert transport_cost(P.astype(np.float32), M).dtype == np.float64


def test_assignment_plan_from_linear_sum_assignment():
    rng = np.random.default_rng(5)
    for n, m in [(6, 6), (4, 7), (7, 4)]:
        M = rng.random((n, m))
        r, c = linear_sum_assignment(M)
        k = len(r)
        P = assignment_plan(r, c, n, m)
        assert P.shape == (n, m)
        pr, pc = marginals(P)
        exp_r = np.zeros(n)
        exp_r[r] = 1 / k
        exp_c = np.zeros(m)
        exp_c[c] = 1 / k
        np.testing.assert_allclose(pr, exp_r, rtol=1e-15)
        np.testing.assert_allclose(pc, exp_c, rtol=1e-15)
        np.testing.assert_allclose(transport_cost(P, M), M[r, c].sum() / k, rtol=1e-14)
        if n == m:
            u = np.full(n, 1 / n)
            assert is_coupling(P, u, u)
            # Birkhoff: the optimal assignment is an optimal uniform transport plan
            np.testing.assert_allclose(transport_cost(P, M), ot.emd2(u, u, M), rtol=1e-12)
            np.testing.assert_allclose(monge_cost(c[np.argsort(r)], M), ot.emd2(u, u, M), rtol=1e-12)


def test_assignment_plan_mass_and_duplicates():
    P = assignment_plan(np.array([0, 0, 1]), np.array([1, 1, 0]), 2, 3, mass=np.array([0.25, 0.5, 0.25]))
    np.testing.assert_allclose(P, [[0, 0.75, 0], [0.25, 0, 0]])
    P = assignment_plan([0, 1], [2, 2], 2, 3, mass=2.0)
    np.testing.assert_allclose(P, [[0, 0, 2], [0, 0, 2]])
    assert assignment_plan([0], [0], 1, 1, dtype=np.float32).dtype == np.float32
    assert assignment_plan([0], [0], 1, 1, mass=np.ones(1, np.float32)).dtype == np.float32


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 8), seed=st.integers(0, 2**31), batch=st.sampled_from([(), (3,)]))
def test_monge_cost_is_transport_cost_of_assignment_plan(n, m, seed, batch):
    rng = np.random.default_rng(seed)
    M = rng.random((n, m))
    sigma = rng.integers(0, m, size=batch + (n,))  # any map, not necessarily injective
    cost = monge_cost(sigma, M)
    assert cost.shape == batch
    for idx in np.ndindex(*batch):
        P = assignment_plan(np.arange(n), sigma[idx], n, m)
        np.testing.assert_allclose(cost[idx], transport_cost(P, M), rtol=1e-13)
        np.testing.assert_allclose(cost[idx], M[np.arange(n), sigma[idx]].mean(), rtol=1e-13)
        # the plan of a map is a coupling of (uniform, its push-forward)
        u = np.full(n, 1 / n)
        assert is_coupling(P, u, np.bincount(sigma[idx], minlength=m) / n, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), d=st.sampled_from([None, 1, 3]), seed=st.integers(0, 2**31))
def test_barycentric_map_of_permutation_is_y_sigma(n, d, seed):
    rng = np.random.default_rng(seed)
    sigma = rng.permutation(n)
    y = rng.standard_normal((n,) if d is None else (n, d))
    P = assignment_plan(np.arange(n), sigma, n, n)
    np.testing.assert_allclose(barycentric_map(P, y), y[sigma], rtol=1e-13, atol=1e-15)


def test_barycentric_map_general_and_empty_rows():
    rng = np.random.default_rng(6)
    P = rng.random((2, 4, 3))
    P[1, 2] = 0.0
    y = rng.standard_normal((3, 2))
    T = barycentric_map(P, y)
    assert T.shape == (2, 4, 2) and np.all(np.isfinite(T))
    np.testing.assert_allclose(T[0], P[0] @ y / P[0].sum(1, keepdims=True), rtol=1e-13)
    np.testing.assert_array_equal(T[1, 2], 0.0)
    with pytest.raises(ValueError, match="rows with zero mass"):
        barycentric_map(P, y, empty_rows="raise")
    np.testing.assert_allclose(barycentric_map(P[0], y, empty_rows="raise"), T[0])


def test_barycentric_map_matches_pot_da():
    rng = np.random.default_rng(7)
    xs, xt = rng.random((8, 2)), rng.random((6, 2))
    a, b = ot.unif(8), ot.unif(6)
    P = ot.emd(a, b, ot.dist(xs, xt))
    ref = (P / P.sum(1, keepdims=True)) @ xt  # ot.da.EMDTransport's barycentric mapping
    np.testing.assert_allclose(barycentric_map(P, xt), ref, rtol=1e-12)


# ---- namespaces -----------------------------------------------------------------------


def test_coupling_namespaces(xp):
    rng = np.random.default_rng(8)
    a, b = random_histograms(rng, (2, 5)), random_histograms(rng, (4,))
    M = rng.random((5, 4))
    P = independent_coupling(asxp(xp, a), asxp(xp, b))
    xp_assert_close(P, a[:, :, None] * b[None, None, :], xp=xp, rtol=1e-14, dtype=xp.float64)
    ok = is_coupling(P, asxp(xp, a), asxp(xp, b))
    assert_namespace(ok, xp)
    assert bool(xp.all(ok))
    assert is_coupling(P[0, ...], asxp(xp, a[0]), asxp(xp, b)) is True
    r, c = marginals(P)
    xp_assert_close(r, a, xp=xp, rtol=1e-13)
    xp_assert_close(c, np.broadcast_to(b, (2, 4)), xp=xp, rtol=1e-13)
    xp_assert_close(transport_cost(P, asxp(xp, M)), (np.einsum("bi,j->bij", a, b) * M).sum((1, 2)), xp=xp, rtol=1e-13)
    y = rng.standard_normal((4, 3))
    xp_assert_close(barycentric_map(P, asxp(xp, y)), np.broadcast_to(b @ y, (2, 5, 3)), xp=xp, rtol=1e-12)


def test_assignment_namespaces(xp):
    rng = np.random.default_rng(9)
    M = rng.random((6, 6))
    r, c = linear_sum_assignment(M)
    P = assignment_plan(asxp(xp, r, xp.int64), asxp(xp, c, xp.int64), 6, 6)
    assert_namespace(P, xp)
    xp_assert_close(P, np.eye(6)[c] / 6, xp=xp, dtype=xp.float64)
    cost = monge_cost(asxp(xp, c, xp.int64), asxp(xp, M))
    assert_namespace(cost, xp)
    xp_assert_close(cost, M[r, c].mean(), rtol=1e-14)
    xp_assert_close(transport_cost(P, asxp(xp, M)), M[r, c].mean(), rtol=1e-14)
    y = rng.standard_normal(6)
    xp_assert_close(barycentric_map(P, asxp(xp, y)), y[c], xp=xp, rtol=1e-14)
    P32 = assignment_plan(asxp(xp, r, xp.int64), asxp(xp, c, xp.int64), 6, 6, mass=asxp(xp, np.ones(6, np.float32)))
    assert P32.dtype == xp.float32


def test_mixed_namespaces_raise():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same array library"):
        is_coupling(torch.ones((2, 2)) / 4, A, B)
    with pytest.raises(TypeError, match="same array library"):
        transport_cost(torch.ones((2, 2)), np.ones((2, 2)))


def test_jax_assignment_and_monge():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    P = assignment_plan(jnp.asarray([0, 1, 1]), jnp.asarray([1, 0, 0]), 2, 2, mass=jnp.asarray([1.0, 0.5, 0.5]))
    np.testing.assert_allclose(np.asarray(P), [[0, 1], [1, 0]])
    M = jnp.asarray([[4.0, 1.0], [2.0, 8.0]])
    np.testing.assert_allclose(float(monge_cost(jnp.asarray([1, 0]), M)), 1.5)


# ---- bad input ------------------------------------------------------------------------

A = np.array([0.5, 0.5])
B = np.array([0.25, 0.75])
P2 = np.outer(A, B)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: is_coupling(P2, A, np.ones(3) / 3), ValueError, "b has 3 bins but P has 2 columns"),
        (lambda: is_coupling(P2, np.ones(3) / 3, B), ValueError, "a has 3 bins but P has 2 rows"),
        (lambda: is_coupling(np.ones(2), A, B), ValueError, r"P must be a plan of shape \(\.\.\., n, m\)"),
        (lambda: is_coupling(P2, A, B, atol=-1), ValueError, "atol must be >= 0"),
        (lambda: is_coupling(P2, -A, B), ValueError, "a has negative masses"),
        (lambda: is_coupling(P2, A, np.array([np.nan, 1])), ValueError, "b contains NaN"),
        (lambda: is_coupling(np.ones((3, 2, 2)), np.ones((2, 2)), B), ValueError, "do not broadcast"),
        (lambda: marginals(np.ones(3)), ValueError, r"P must be a transport plan of shape \(\.\.\., n, m\)"),
        (lambda: marginals(np.zeros((0, 3))), ValueError, "P is empty"),
        (lambda: marginals(-P2), ValueError, "P has negative masses"),
        (lambda: marginals(P2 * np.nan), ValueError, "P contains NaN or infinite masses"),
        (lambda: transport_cost(P2, np.ones((2, 3))), ValueError, r"M has shape \(2, 3\) but P has plans"),
        (lambda: transport_cost(P2, np.ones(4)), ValueError, "M must be a 2-D cost matrix"),
        (lambda: transport_cost(P2, np.array([[1, np.inf], [0, 0]])), ValueError, "M contains NaN or infinite"),
        (lambda: independent_coupling(A, B * 2), ValueError, r"same total mass: sum\(a\) = 1, sum\(b\) = 2"),
        (lambda: independent_coupling(np.zeros(2), B), ValueError, "a has an all-zero histogram"),
        (lambda: independent_coupling(np.array([]), B), ValueError, "a is empty"),
        (lambda: assignment_plan([0, 1], [0], 2, 2), ValueError, "rows and cols must be 1-D of the same length"),
        (lambda: assignment_plan([0, 2], [0, 1], 2, 2), ValueError, r"rows has indices outside \[0, 2\)"),
        (lambda: assignment_plan([0, 1], [-1, 1], 2, 2), ValueError, r"cols has indices outside \[0, 2\)"),
        (lambda: assignment_plan([0.0, 1.0], [0, 1], 2, 2), TypeError, "rows must hold integer indices"),
        (lambda: assignment_plan([], [], 2, 2), ValueError, "rows is empty"),
        (lambda: assignment_plan([0], [0], 0, 2), ValueError, "n must be >= 1"),
        (lambda: assignment_plan([0], [0], 2, 2.0), TypeError, "m must be an integer"),
        (lambda: assignment_plan([0], [0], 2, 2, mass=-1.0), ValueError, "mass must be >= 0"),
        (lambda: assignment_plan([0], [0], 2, 2, mass=np.array([1.0, 2.0])), ValueError, "one entry per pair"),
        (lambda: assignment_plan([0], [0], 2, 2, mass=np.array([np.nan])), ValueError, "mass contains NaN"),
        (lambda: assignment_plan([0], [0], 2, 2, dtype=np.int64), TypeError, "dtype must be float32 or float64"),
        (lambda: monge_cost(np.array([0, 1, 0]), np.ones((2, 2))), ValueError, "sigma has 3 entries but M has 2 rows"),
        (lambda: monge_cost(np.array([0, 2]), np.ones((2, 2))), ValueError, r"sigma has indices outside \[0, 2\)"),
        (lambda: monge_cost(np.array([0.0, 1.0]), np.ones((2, 2))), TypeError, "sigma must hold integer"),
        (lambda: monge_cost(np.array([0, 1]), np.ones((2, 2, 2))), ValueError, "M must be a 2-D cost"),
        (lambda: barycentric_map(P2, np.ones(3)), ValueError, "y has 3 points but P has 2 columns"),
        (lambda: barycentric_map(P2, np.ones((2, 2, 2))), ValueError, r"y must have shape \(m,\) or \(m, d\)"),
        (lambda: barycentric_map(P2, np.array([np.nan, 1.0])), ValueError, "y contains NaN"),
        (lambda: barycentric_map(P2, np.ones(2), empty_rows="nan"), ValueError, "unknown empty_rows 'nan'"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
