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

_BOOL = ("dice", "jaccard", "rogerstanimoto", "russellrao", "sokalsneath", "yule")
_NO_W = ("jensenshannon", "mahalanobis", "seuclidean")

CASES = [(m, {}) for m in METRICS if m != "minkowski"] + [
    ("minkowski", {"p": 1.5}),
    ("minkowski", {"p": 3}),
    ("minkowski", {"p": 1}),
    ("minkowski", {"p": 2}),
    ("minkowski", {"p": math.inf}),
]
IDS = [m + (f"-p{kw['p']}" if kw else "") for m, kw in CASES]


def test_metrics_are_cdists():
    from scipy.spatial.distance import _METRICS_NAMES

    assert set(METRICS) == set(_METRICS_NAMES)


def _ref(x, y, metric, kw):
    if metric == "minkowski" and math.isinf(kw["p"]):
        kw = {k: v for k, v in kw.items() if k != "p"}
        return cdist(x, y, "chebyshev", **kw)
    return cdist(x, y, metric, **kw)


def _data(metric, rng, shape, dtype=np.float64):
    """Points suited to ``metric``: 0/1 for the boolean metrics, positive rows for jensenshannon."""
    if metric in _BOOL:
        return (rng.random(shape) < 0.5).astype(dtype)
    if metric == "jensenshannon":
        return (rng.random(shape) + 0.05).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _assert_matches(M, R, x, y, rtol, atol):
    """``M`` equals cdist's ``R``; where cdist gives NaN (0/0) the points coincide and ``M`` is 0."""
    nan = np.isnan(R)
    if nan.any():
        i, j = np.nonzero(nan)
        assert np.all(x[i] == y[j]) and np.all(M[nan] == 0.0)
    np.testing.assert_allclose(M[~nan], R[~nan], rtol=rtol, atol=atol * np.nanmax(R))


def _ref0(x, y, metric, kw):
    """cdist with its NaN (0/0 between coinciding zero vectors) replaced by the distance 0."""
    R = _ref(x, y, metric, kw)
    i, j = np.nonzero(np.isnan(R))
    assert np.all(x[i] == y[j])
    R[i, j] = 0.0
    return R


def _tol(dtype):
    return (1e-12, 1e-12) if dtype == np.float64 else (2e-5, 2e-5)


@pytest.mark.parametrize("metric,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("same", [False, True], ids=["xy", "y=None"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "w"])
def test_cost_matrix_matches_cdist(metric, kw, dtype, same, weighted):
    if weighted and metric in _NO_W:
        pytest.skip("cdist takes no w for this metric")
    rng = np.random.default_rng(1)
    x = _data(metric, rng, (37, 4), dtype)
    y = x if same else _data(metric, rng, (23, 4), dtype)
    if weighted:
        kw = dict(kw, w=rng.random(4) + 0.1)
    M = cost_matrix(x, None if same else y, metric=metric, **kw)
    R = _ref(x.astype(np.float64), y.astype(np.float64), metric, kw)
    assert isinstance(M, np.ndarray) and M.dtype == dtype and M.shape == R.shape
    _assert_matches(M, R, x, y, *_tol(dtype))
    assert M.min() >= 0
    if same:
        np.testing.assert_array_equal(M, M.T)
        if metric != "russellrao":
            np.testing.assert_array_equal(np.diag(M), 0.0)


@pytest.mark.parametrize("metric,kw", CASES, ids=IDS)
@pytest.mark.parametrize("shift", [0.0, 1e6], ids=["unit", "offset1e6"])
@pytest.mark.parametrize("scale", [1.0, 1e6], ids=["", "x1e6"])
def test_coincident_points_are_exactly_zero(metric, kw, shift, scale):
    if metric == "russellrao":
        pytest.skip("russellrao is not a metric: d(u, u) = n_ff / n")
    rng = np.random.default_rng(11)
    u = _data(metric, rng, (12, 5))
    if metric not in _BOOL:
        u = u * scale + (shift if metric != "jensenshannon" else 0.0)
    v = u[[3, 7, 7, 1]]
    M = cost_matrix(u, v, metric=metric, **kw)
    assert M[3, 0] == 0.0 and M[7, 1] == 0.0 and M[7, 2] == 0.0 and M[1, 3] == 0.0
    R = _ref(u, v, metric, kw)
    ok = ~np.isnan(R)
    # cdist's 1 - cos has an absolute error of a few eps (all ~1e-13 at offset 1e6)
    floor = 1e-15 if metric in ("cosine", "correlation") else 0.0
    np.testing.assert_allclose(M[ok], R[ok], rtol=1e-9, atol=1e-9 * np.nanmax(R) + floor)


def test_coincident_zero_vectors():
    # cdist gives NaN for two zero vectors under these; they coincide, so 0
    z = np.zeros((2, 3))
    for metric in ("braycurtis", "dice", "sokalsneath", "yule", "jaccard", "canberra"):
        np.testing.assert_array_equal(cost_matrix(z, z, metric=metric), 0.0)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_close_pairs_keep_relative_accuracy(metric):
    # pairs 1e-7 apart in a cloud of radius 1 (and offset 1e6): the GEMM alone
    # loses most digits there; the recomputed entries match cdist
    rng = np.random.default_rng(12)
    x = rng.standard_normal((30, 3)) + 1e3
    y = x[::-1] + 1e-7 * rng.standard_normal((30, 3))
    R = cdist(x, y, metric)
    np.testing.assert_allclose(cost_matrix(x, y, metric=metric), R, rtol=1e-8)
    np.testing.assert_allclose(cost_matrix(x, y, metric=metric, w=np.array([1.0, 2.0, 3.0])),
                               cdist(x, y, metric, w=np.array([1.0, 2.0, 3.0])), rtol=1e-8)


@pytest.mark.parametrize("metric,kw", [("sqeuclidean", {}), ("euclidean", {"w": np.arange(1.0, 4.0)}),
                                       ("seuclidean", {}), ("mahalanobis", {"VI": np.diag([1.0, 0.5, 2.0]) + 0.1})])
def test_tight_clusters_far_from_the_centre(metric, kw):
    # most pairs are close against the norms: whole row blocks are recomputed
    rng = np.random.default_rng(14)
    c = np.where(rng.random((300, 1)) < 0.5, -100.0, 100.0)
    x = c + 1e-3 * rng.standard_normal((300, 3))
    y = np.concatenate([x[:50], -c[:80] + 1e-3 * rng.standard_normal((80, 3))])
    M = cost_matrix(x, y, metric=metric, **kw)
    R = cdist(x, y, metric, **kw)
    np.testing.assert_allclose(M, R, rtol=1e-11)
    np.testing.assert_array_equal(np.diag(M[:50, :50]), 0.0)


# ---- hypothesis vs cdist -------------------------------------------------------------


@st.composite
def _problem(draw):
    metric = draw(st.sampled_from(METRICS))
    n, m, d = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    if metric in _BOOL:
        el = st.sampled_from([0.0, 1.0])
    elif metric == "jensenshannon":
        el = st.floats(0.0, 1e3)
    else:
        el = st.floats(-1e3, 1e3, allow_subnormal=False) | st.sampled_from([0.0, 1.0, -1.0])
    x = draw(arrays(np.float64, (n, d), elements=el))
    # some rows of y repeat rows of x (coincident points)
    y = draw(arrays(np.float64, (m, d), elements=el))
    take = draw(st.lists(st.integers(0, n - 1), max_size=m))
    y[: len(take)] = x[take]
    kw = {}
    if metric == "minkowski":
        kw["p"] = draw(st.sampled_from([1.0, 1.5, 2.0, 3.0, 7.0]))
    if metric not in _NO_W and draw(st.booleans()):
        kw["w"] = draw(arrays(np.float64, (d,), elements=st.floats(0.01, 10.0)))
    return metric, x, y, kw


@settings(max_examples=300, deadline=None)
@given(prob=_problem())
def test_hypothesis_vs_cdist(prob):
    metric, x, y, kw = prob
    try:
        M = cost_matrix(x, y, metric=metric, **kw)
    except ValueError as exc:  # inputs on which the metric is undefined: a clear message
        assert any(s in str(exc) for s in ("zero vector", "constant", "sums to 0", "positive semi",
                                           "too few", "singular"))
        return
    with np.errstate(all="ignore"):
        R = _ref(x, y, metric, kw)
    coincide = (x[:, None, :] == y[None, :, :]).all(-1)
    if metric != "russellrao":
        assert np.all(M[coincide] == 0.0)
    ok = np.isfinite(R) & ~coincide
    assert np.all(np.isfinite(M[~np.isfinite(R) & ~coincide] if metric != "braycurtis" else M[ok]))
    scale = max(np.abs(R[ok]).max(initial=0.0), 1e-300)
    rtol = 1e-9
    if metric == "mahalanobis":  # cdist inverts the covariance: both errors grow with its condition
        rtol = max(rtol, 1e-14 * np.linalg.cond(np.atleast_2d(np.cov(np.vstack([x, y]).T))))
    # cosine / correlation: cdist's 1 - cos has an absolute error of a few eps
    np.testing.assert_allclose(M[ok], R[ok], rtol=rtol, atol=1e-12 * scale + 1e-14)


def test_float16_is_computed_in_float32():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((9, 3)).astype(np.float16)
    y = rng.standard_normal((7, 3)).astype(np.float16)
    for metric in ("sqeuclidean", "euclidean", "cityblock", "cosine", "minkowski"):
        M = cost_matrix(x, y, metric=metric, p=3)
        assert M.dtype == np.float16
        R = _ref(x.astype(np.float32), y.astype(np.float32), metric, {"p": 3} if metric == "minkowski" else {})
        np.testing.assert_array_equal(M, R.astype(np.float32).astype(np.float16))
    # 300^2 * 2 overflows float16 (max 65504): an error, never inf
    big = np.array([[0.0, 0.0], [300.0, 300.0]], dtype=np.float16)
    with pytest.raises(ValueError, match="exceeds the range of float16"):
        cost_matrix(big, metric="sqeuclidean")
    assert cost_matrix(big, metric="euclidean").dtype == np.float16


def test_torch_half_precision():
    torch = pytest.importorskip("torch")
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    for dt in (torch.float16, torch.bfloat16):
        M = cost_matrix(x.to(dt), metric="euclidean")
        assert M.dtype == dt
        ref = cdist(x.to(dt).float().numpy(), x.to(dt).float().numpy())
        np.testing.assert_allclose(M.float().numpy(), ref, rtol=1e-2, atol=1e-2)
        assert bool((torch.diagonal(M) == 0).all())


def test_one_dimensional_input_is_scalar_points():
    rng = np.random.default_rng(2)
    x, y = rng.random(9), rng.random(5)
    for metric in METRICS:
        if metric in ("cosine", "correlation", "mahalanobis", "jensenshannon") or metric in _BOOL:
            continue  # 1-D points: no direction, no covariance, one-bin histograms, not boolean
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


@pytest.mark.parametrize("metric", ["cityblock", "chebyshev", "minkowski", "canberra", "jensenshannon", "euclidean"])
def test_row_tiles_with_remainders(metric, monkeypatch):
    # tiny tiles force many row blocks, a remainder block and the rows=1 case
    # (array_api_strict: the array-API path, numpy calls cdist for two of these)
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(5)
    x, y = rng.random((29, 3)), rng.random((11, 3))
    y[2], y[5] = x[4], x[20]  # euclidean: recomputed row blocks
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


@pytest.mark.parametrize("metric,kw", CASES, ids=IDS)
def test_cost_matrix_namespaces(xp, metric, kw):
    rng = np.random.default_rng(8)
    x, y = _data(metric, rng, (15, 3)), _data(metric, rng, (12, 3))
    y[4] = x[2]  # a coincident pair
    R = _ref0(x, y, metric, kw)
    M = cost_matrix(asxp(xp, x), asxp(xp, y), metric=metric, **kw)
    xp_assert_close(M, R, xp=xp, rtol=1e-12, atol=1e-13, dtype=xp.float64)
    if metric != "russellrao":
        assert float(M[2, 4]) == 0.0
    if metric not in _NO_W:
        w = rng.random(3) + 0.1
        M = cost_matrix(asxp(xp, x), asxp(xp, y), metric=metric, w=asxp(xp, w), **kw)
        xp_assert_close(M, _ref0(x, y, metric, dict(kw, w=w)), xp=xp, rtol=1e-12, atol=1e-13, dtype=xp.float64)
    M = cost_matrix(asxp(xp, x, xp.float32), metric=metric, **kw)
    xp_assert_close(M, _ref0(x, x, metric, kw), xp=xp, rtol=2e-5, atol=2e-5, dtype=xp.float32)


def test_cost_matrix_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(9)
    x = rng.random((10, 2)).astype(np.float32)
    y = rng.random((7, 2)).astype(np.float32)
    for metric in ("sqeuclidean", "cityblock", "cosine", "canberra", "jensenshannon"):
        f = jax.jit(lambda a, b, metric=metric: cost_matrix(a, b, metric=metric))
        got = np.asarray(f(jnp.asarray(x), jnp.asarray(y)))
        np.testing.assert_allclose(got, cdist(x, y, metric), rtol=1e-4, atol=1e-5)
    g = jax.jit(lambda a: cost_matrix(a, metric="euclidean"))
    G = np.asarray(g(jnp.asarray(x)))
    assert np.all(np.diag(G) == 0) and np.all(G == G.T)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "seuclidean", "mahalanobis"])
def test_jax_grad_with_coincident_points(metric):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(10)
    x = rng.standard_normal((9, 3))
    y = np.concatenate([x[[1, 4]], rng.standard_normal((5, 3))])
    loss = lambda a: jnp.sum(cost_matrix(a, jnp.asarray(y), metric=metric) ** 2)
    g = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    assert np.all(np.isfinite(g))
    h, e = 1e-6, np.zeros_like(x)
    e[2, 1] = h  # central finite difference of one coordinate
    fd = (float(loss(jnp.asarray(x + e))) - float(loss(jnp.asarray(x - e)))) / (2 * h)
    np.testing.assert_allclose(g[2, 1], fd, rtol=1e-5)


@pytest.mark.parametrize(
    "metric", ["sqeuclidean", "euclidean", "seuclidean", "mahalanobis", "minkowski", "cosine", "cityblock"]
)
def test_torch_autograd(metric):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cost_matrix(a, b, metric=metric, p=3), (x, y))
    cost_matrix(x, metric=metric, p=3).sum().backward()  # zero distances: finite gradient
    assert bool(torch.isfinite(x.grad).all())
    x.grad = None
    cost_matrix(x, x[[3, 1, 1]], metric=metric, p=3).sum().backward()  # recomputed exact zeros
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
    if metric in _BOOL:
        x = (x > 0).astype(float)
    if metric == "jensenshannon":
        x = np.abs(x) + 1.0
    if metric in ("cosine", "correlation", "seuclidean", "mahalanobis"):
        x = x + np.arange(x.size).reshape(x.shape) ** 1.5  # no constant rows or features
    if metric == "mahalanobis" and 2 * x.shape[0] <= x.shape[1]:
        return
    if metric == "cosine":
        x = x + np.sign(x.sum(1, keepdims=True) + 0.5) * 1.0  # avoid zero vectors
        x[np.linalg.norm(x, axis=1) == 0] = 1.0
    try:
        M = cost_matrix(x, metric=metric, p=3)
    except ValueError as exc:  # no usable default V / VI; one feature: every row constant
        assert metric in ("seuclidean", "mahalanobis", "correlation") and ("constant" in str(exc) or "singular" in str(exc))
        return
    np.testing.assert_array_equal(M, M.T)
    if metric != "russellrao":
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
    # close pairs are recomputed directly: every metric is accurate to ~eps relative
    tol = 1e-9
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
        ({"metric": "hamingg"}, ValueError, "unknown metric 'hamingg'; choose one of 'braycurtis', .*'yule'"),
        ({"metric": "euclidean", "w": np.ones(3)}, ValueError, r"w has shape \(3,\) but must have shape \(2,\)"),
        ({"metric": "euclidean", "w": np.ones((1, 2))}, ValueError, r"w has shape \(1, 2\)"),
        ({"metric": "cityblock", "w": np.array([1.0, -1.0])}, ValueError, "w has negative weights"),
        ({"metric": "cityblock", "w": np.zeros(2)}, ValueError, "w is all zero"),
        ({"metric": "cityblock", "w": np.array([1.0, np.nan])}, ValueError, "w contains NaN"),
        ({"metric": "seuclidean", "w": np.ones(2)}, TypeError, "takes no weights w"),
        ({"metric": "euclidean", "V": np.ones(2)}, TypeError, "V is used only by metric='seuclidean'"),
        ({"metric": "cosine", "VI": np.eye(2)}, TypeError, "VI is used only by metric='mahalanobis'"),
        ({"metric": "seuclidean", "V": np.ones(3)}, ValueError, r"V has shape \(3,\)"),
        ({"metric": "seuclidean", "V": np.array([1.0, 0.0])}, ValueError, "V has entries <= 0"),
        ({"metric": "seuclidean"}, ValueError, "feature 0 is constant"),
        ({"metric": "mahalanobis"}, ValueError, r"covariance of x and y \(stacked\) is singular"),
        ({"metric": "mahalanobis", "VI": np.eye(3)}, ValueError, r"VI has shape \(3, 3\)"),
        ({"metric": "mahalanobis", "VI": -np.eye(2)}, ValueError, "VI is not positive semi-definite"),
        ({"metric": "dice"}, ValueError, "x has entries other than 0 and 1"),
        ({"metric": "correlation"}, ValueError, r"x has a constant row \(row 0\)"),
        ({"metric": 3}, ValueError, "unknown metric"),
        ({"metric": "minkowski", "p": 0.5}, ValueError, "p must be >= 1"),
        ({"metric": "minkowski", "p": float("nan")}, ValueError, "p must be finite"),
        ({"metric": "minkowski", "p": -math.inf}, ValueError, "p must be finite"),
        ({"metric": "minkowski", "p": "2"}, TypeError, "p must be a real number"),
    ],
)
def test_cost_matrix_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cost_matrix(2 * np.ones((2, 2)), **kwargs)


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


def test_mahalanobis_needs_more_points_than_features():
    with pytest.raises(ValueError, match="4 points in 5 dimensions are too few"):
        cost_matrix(np.random.default_rng(0).random((2, 5)), metric="mahalanobis")


def test_jensenshannon_needs_probability_rows():
    with pytest.raises(ValueError, match="x has negative entries"):
        cost_matrix(np.array([[1.0, -1.0]]), metric="jensenshannon")
    with pytest.raises(ValueError, match="y row 1 sums to 0"):
        cost_matrix(np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]]), metric="jensenshannon")


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
