"""Ground costs: cost_matrix vs scipy's cdist, label costs vs direct formulas, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

import otcore._cost as cost_mod
from otcore._cost import METRICS, cost_matrix, grid_cost, normalize_cost, ordinal_cost
from tests._helpers import assert_namespace, asxp, xp_assert_close

CASES = [(m, {}) for m in METRICS if m != "minkowski"] + [
    ("minkowski", {"p": 1.5}),
    ("minkowski", {"p": 3}),
    ("minkowski", {"p": 1}),
    ("minkowski", {"p": 2}),
    ("minkowski", {"p": math.inf}),
]
IDS = [m + (f"-p{kw['p']}" if kw else "") for m, kw in CASES]


def _ref(x, y, metric, kw):
    if metric == "minkowski" and math.isinf(kw["p"]):
        return cdist(x, y, "chebyshev")
    return cdist(x, y, metric, **kw)


def _tol(dtype):
    return (1e-12, 1e-12) if dtype == np.float64 else (2e-5, 2e-5)


@pytest.mark.parametrize("metric,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("same", [False, True], ids=["xy", "y=None"])
def test_cost_matrix_matches_cdist(metric, kw, dtype, same):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 4)).astype(dtype)
    y = x if same else rng.standard_normal((23, 4)).astype(dtype)
    M = cost_matrix(x, None if same else y, metric=metric, **kw)
    R = _ref(x.astype(np.float64), y.astype(np.float64), metric, kw)
    assert isinstance(M, np.ndarray) and M.dtype == dtype and M.shape == R.shape
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(M, R, rtol=rtol, atol=atol * R.max())
    assert M.min() >= 0
    if same:
        np.testing.assert_array_equal(np.diag(M), 0.0)
        np.testing.assert_array_equal(M, M.T)


def test_one_dimensional_input_is_scalar_points():
    rng = np.random.default_rng(2)
    x, y = rng.random(9), rng.random(5)
    for metric in METRICS:
        if metric == "cosine":
            continue
        np.testing.assert_allclose(
            cost_matrix(x, y, metric=metric, p=3),
            _ref(x[:, None], y[:, None], metric, {"p": 3} if metric == "minkowski" else {}),
            rtol=1e-12,
            atol=1e-14,
        )
    assert cost_matrix(x).shape == (9, 9)


def test_integer_and_bool_inputs_promote_to_float64():
    x = np.array([[0, 0], [3, 4]])
    M = cost_matrix(x, metric="euclidean")
    assert M.dtype == np.float64
    np.testing.assert_array_equal(M, [[0, 5], [5, 0]])
    assert cost_matrix(np.array([[True, False]]), np.array([[False, False]]), metric="cityblock").dtype == np.float64


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_gemm_path_is_stable_under_large_offset(metric):
    # unit-scale distances between points near 1e6: the plain expansion
    # |x|^2 + |y|^2 - 2 x.y cancels ~12 digits; centring first keeps them.
    rng = np.random.default_rng(3)
    x = rng.random((40, 3)) + 1e6
    y = rng.random((30, 3)) + 1e6
    R = cdist(x, y, metric)
    np.testing.assert_allclose(cost_matrix(x, y, metric=metric), R, rtol=1e-10)
    np.testing.assert_allclose(cost_matrix(x, metric=metric), cdist(x, x, metric), rtol=1e-10, atol=1e-12)
    naive = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    assert np.max(np.abs(naive - cdist(x, y, "sqeuclidean")) / cdist(x, y, "sqeuclidean")) > 1e-6


def test_gemm_path_far_apart_clouds():
    rng = np.random.default_rng(4)
    x = rng.random((20, 2))
    y = rng.random((25, 2)) + 1e5
    np.testing.assert_allclose(cost_matrix(x, y), cdist(x, y, "sqeuclidean"), rtol=1e-10)


@pytest.mark.parametrize("metric", ["cityblock", "chebyshev", "minkowski"])
def test_row_tiles_with_remainders(metric, monkeypatch):
    # tiny tiles force many row blocks, a remainder block and the rows=1 case
    # (array_api_strict: the array-API path, numpy calls cdist for two of these)
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(5)
    x, y = rng.random((29, 3)), rng.random((11, 3))
    R = _ref(x, y, metric, {"p": 3} if metric == "minkowski" else {})
    for tile in (1, 7, 40):
        monkeypatch.setattr(cost_mod, "_TILE", tile)
        M = cost_matrix(xps.asarray(x), xps.asarray(y), metric=metric, p=3)
        xp_assert_close(M, R, xp=xps, rtol=1e-12)


def test_minkowski_large_p_neither_overflows_nor_underflows():
    rng = np.random.default_rng(6)
    x, y = rng.random((6, 3)), rng.random((5, 3))
    base = cost_matrix(x, y, metric="minkowski", p=60)
    for s in (1e200, 1e-200):
        M = cost_matrix(x * s, y * s, metric="minkowski", p=60)
        assert np.all(np.isfinite(M)) and np.all(M > 0)
        np.testing.assert_allclose(M, s * base, rtol=1e-12)


def test_cosine_scale_invariant_and_bounded():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 3))
    M = cost_matrix(x, np.concatenate([x, -x, 5 * x]), metric="cosine")
    assert M.min() >= 0 and M.max() <= 2
    np.testing.assert_allclose(M[:, 16:], M[:, :8], atol=1e-14)
    np.testing.assert_allclose(np.diag(M[:, 8:16]), 2.0)


@pytest.mark.parametrize("metric,kw", CASES[:6], ids=IDS[:6])
def test_cost_matrix_namespaces(xp, metric, kw):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((15, 3)), rng.standard_normal((12, 3))
    R = _ref(x, y, metric, kw)
    M = cost_matrix(asxp(xp, x), asxp(xp, y), metric=metric, **kw)
    xp_assert_close(M, R, xp=xp, rtol=1e-12, atol=1e-13, dtype=xp.float64)
    M = cost_matrix(asxp(xp, x, xp.float32), metric=metric, **kw)
    xp_assert_close(M, _ref(x, x, metric, kw), xp=xp, rtol=2e-5, atol=2e-5, dtype=xp.float32)


def test_cost_matrix_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(9)
    x = rng.random((10, 2)).astype(np.float32)
    y = rng.random((7, 2)).astype(np.float32)
    for metric in ("sqeuclidean", "cityblock", "cosine"):
        f = jax.jit(lambda a, b, metric=metric: cost_matrix(a, b, metric=metric))
        got = np.asarray(f(jnp.asarray(x), jnp.asarray(y)))
        np.testing.assert_allclose(got, cdist(x, y, metric), rtol=1e-4, atol=1e-5)
    g = jax.jit(lambda a: cost_matrix(a, metric="euclidean"))
    G = np.asarray(g(jnp.asarray(x)))
    assert np.all(np.diag(G) == 0) and np.all(G == G.T)


@pytest.mark.parametrize("metric", ["euclidean", "minkowski", "cosine", "cityblock"])
def test_torch_autograd(metric):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cost_matrix(a, b, metric=metric, p=3), (x, y))
    cost_matrix(x, metric=metric, p=3).sum().backward()  # zero distances: finite gradient
    assert bool(torch.isfinite(x.grad).all())


# ---- hypothesis properties -------------------------------------------------------------

_points = arrays(
    np.float64,
    st.tuples(st.integers(1, 7), st.integers(1, 4)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=25, deadline=None)
@given(x=_points, metric=st.sampled_from(METRICS))
def test_symmetric_zero_diagonal_when_y_is_none(x, metric):
    if metric == "cosine":
        x = x + np.sign(x.sum(1, keepdims=True) + 0.5) * 1.0  # avoid zero vectors
        x[np.linalg.norm(x, axis=1) == 0] = 1.0
    M = cost_matrix(x, metric=metric, p=3)
    np.testing.assert_array_equal(M, M.T)
    np.testing.assert_array_equal(np.diag(M), 0.0)
    assert np.all(M >= 0)


@settings(max_examples=25, deadline=None)
@given(
    x=arrays(np.float64, st.tuples(st.integers(3, 8), st.just(3)), elements=st.floats(-100, 100)),
    metric=st.sampled_from(["euclidean", "cityblock", "chebyshev", "minkowski"]),
)
def test_triangle_inequality(x, metric):
    M = cost_matrix(x, metric=metric, p=3)
    # M[i, k] <= M[i, j] + M[j, k] for all i, j, k
    lhs = M[:, None, :]
    rhs = M[:, :, None] + M[None, :, :]
    # the GEMM form of the euclidean distance is accurate to ~sqrt(eps) * spread for
    # near-coincident points (documented in cost_matrix); the other metrics are exact-ish
    tol = 3 * np.sqrt(np.finfo(float).eps) if metric == "euclidean" else 1e-9
    assert np.all(lhs <= rhs + tol * (1 + M.max()))


# ---- label costs ----------------------------------------------------------------------


@pytest.mark.parametrize("p", [0, 0.5, 1, 2, 3])
def test_ordinal_cost_formula(p):
    k = 7
    i = np.arange(k)
    ref = np.abs(i[:, None] - i[None, :]).astype(float) ** p
    if p == 0:
        ref = (i[:, None] != i[None, :]).astype(float)
    M = ordinal_cost(k, p=p)
    assert isinstance(M, np.ndarray) and M.dtype == np.float64
    np.testing.assert_allclose(M, ref, rtol=1e-15)


def test_ordinal_cost_namespace_dtype(xp):
    M = ordinal_cost(5, p=2, dtype=xp.float32, xp=xp)
    assert_namespace(M, xp)
    assert M.dtype == xp.float32
    xp_assert_close(M, (np.arange(5)[:, None] - np.arange(5)[None, :]) ** 2.0)
    assert ordinal_cost(1).shape == (1, 1)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cityblock", "chebyshev"])
@pytest.mark.parametrize("d", [1, 3, 5])
def test_grid_cost_vs_cdist(metric, d):
    coords = np.stack(np.unravel_index(np.arange(d * d), (d, d)), axis=1).astype(float)
    np.testing.assert_allclose(grid_cost(d, metric=metric), cdist(coords, coords, metric), rtol=1e-15)


def test_grid_cost_namespace(xp):
    M = grid_cost(3, xp=xp)
    assert_namespace(M, xp)
    assert M.shape == (9, 9)
    xp_assert_close(M[0, 8], math.sqrt(8), rtol=1e-15)
    assert grid_cost(3, dtype=xp.float32, xp=xp).dtype == xp.float32


def test_normalize_cost():
    M = ordinal_cost(10, p=2)
    N = normalize_cost(M, scale=10)
    assert N.max() == 10.0 and N.min() == 0.0
    np.testing.assert_allclose(N, M * 10 / 81, rtol=1e-15)
    assert normalize_cost(M).max() == 1.0
    assert normalize_cost(np.array([[0, 2]])).dtype == np.float64


def test_normalize_cost_namespace(xp):
    M = asxp(xp, np.array([[0.0, 2.0], [4.0, 1.0]], dtype=np.float32))
    N = normalize_cost(M, scale=10)
    xp_assert_close(N, [[0, 5], [10, 2.5]], xp=xp, dtype=xp.float32)


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"metric": "hamming"}, ValueError, "unknown metric 'hamming'; choose one of"),
        ({"metric": 3}, ValueError, "unknown metric"),
        ({"metric": "minkowski", "p": 0.5}, ValueError, "p must be >= 1"),
        ({"metric": "minkowski", "p": float("nan")}, ValueError, "p must be finite"),
        ({"metric": "minkowski", "p": -math.inf}, ValueError, "p must be finite"),
        ({"metric": "minkowski", "p": "2"}, TypeError, "p must be a real number"),
    ],
)
def test_cost_matrix_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cost_matrix(np.ones((2, 2)), **kwargs)


@pytest.mark.parametrize(
    "x,y,exc,match",
    [
        (np.ones((2, 2, 2)), None, ValueError, "x must be a 2-D array of points"),
        (np.float64(1.0), None, ValueError, "x must be a 2-D array of points"),
        (np.ones((0, 2)), None, ValueError, "x has no points"),
        (np.ones((3, 0)), None, ValueError, "x has points with no features"),
        (np.ones((3, 2)), np.ones((0, 2)), ValueError, "y has no points"),
        (np.ones((3, 2)), np.ones((3, 3)), ValueError, r"same number of features.*\(3, 2\).*\(3, 3\)"),
        (np.array([[0.0, np.nan]]), None, ValueError, "x contains NaN or infinite coordinates"),
        (np.ones((2, 2)), np.array([[np.inf, 0.0]]), ValueError, "y contains NaN or infinite"),
        (np.ones((2, 2)) + 1j, None, TypeError, "complex"),
        (np.array([["a", "b"]]), None, TypeError, "x must hold numbers"),
    ],
)
def test_cost_matrix_bad_arrays(x, y, exc, match):
    with pytest.raises(exc, match=match):
        cost_matrix(x, y)


def test_cost_matrix_mixed_namespaces():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same array library"):
        cost_matrix(np.ones((2, 2)), torch.ones((2, 2)))


def test_cosine_zero_vector_raises():
    with pytest.raises(ValueError, match=r"x has a zero vector \(row 1\)"):
        cost_matrix(np.array([[1.0, 0.0], [0.0, 0.0]]), metric="cosine")
    with pytest.raises(ValueError, match="y has a zero vector"):
        cost_matrix(np.ones((2, 2)), np.zeros((1, 2)), metric="cosine")


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: ordinal_cost(0), ValueError, "k must be >= 1"),
        (lambda: ordinal_cost(2.5), TypeError, "k must be an integer"),
        (lambda: ordinal_cost(True), TypeError, "k must be an integer"),
        (lambda: ordinal_cost(3, p=-1), ValueError, "p must be >= 0"),
        (lambda: ordinal_cost(3, p=np.nan), ValueError, "p must be finite"),
        (lambda: ordinal_cost(3, dtype=np.int64), TypeError, "dtype must be float32 or float64"),
        (lambda: grid_cost(0), ValueError, "d must be >= 1"),
        (lambda: grid_cost(3, metric="cosine"), ValueError, "unknown metric 'cosine'"),
        (lambda: normalize_cost(np.zeros((2, 2))), ValueError, "M is all zeros"),
        (lambda: normalize_cost(np.array([[1.0, -1.0]])), ValueError, "M has negative costs"),
        (lambda: normalize_cost(np.array([[1.0, np.nan]])), ValueError, "M contains NaN or infinite"),
        (lambda: normalize_cost(np.ones(3)), ValueError, "M must be a 2-D cost matrix"),
        (lambda: normalize_cost(np.ones((0, 3))), ValueError, "M is empty"),
        (lambda: normalize_cost(np.ones((2, 2)), scale=0), ValueError, "scale must be > 0"),
        (lambda: normalize_cost(np.ones((2, 2)), scale=np.inf), ValueError, "scale must be finite"),
    ],
)
def test_label_cost_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
