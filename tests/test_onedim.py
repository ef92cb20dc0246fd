"""Tests for otcore._onedim: wasserstein_1d, cdf_emd, cdf_emd_grad.

References: scipy.stats.wasserstein_distance (p = 1), POT's exact LP ``ot.emd2``
on |x - y|^p costs, finite differences, closed forms.
"""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from otcore._onedim import cdf_emd, cdf_emd_grad, wasserstein_1d
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")


def _emd2(a, b, M):
    return float(ot.emd2(a, b, M, numItermax=10**7))


def _norm(w, n):
    return np.full(n, 1.0 / n) if w is None else w / w.sum()


# --------------------------------------------------------------------------- wasserstein_1d


def test_known_value():
    assert float(wasserstein_1d(np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0]))) == pytest.approx(5.0)
    assert float(wasserstein_1d([0.0, 1.0], [0.0, 1.0], [3.0, 1.0], [2.0, 2.0])) == pytest.approx(0.25)
    # scipy's docstring example
    d = wasserstein_1d([3.4, 3.9, 7.5, 7.8], [4.5, 1.4], [1.4, 0.9, 3.1, 7.2], [3.2, 3.5])
    assert float(d) == pytest.approx(4.0781331438047861, rel=1e-12)


def test_returns_0d_array():
    d = wasserstein_1d(np.array([0.0, 1.0]), np.array([2.0]))
    assert isinstance(d, np.ndarray) and d.shape == ()


@pytest.mark.parametrize("n,m", [(7, 7), (5, 9), (1, 4)])
@pytest.mark.parametrize("weighted", [False, True])
def test_vs_scipy_p1(n, m, weighted):
    rng = np.random.default_rng(n * 10 + m)
    for _ in range(5):
        u, v = rng.normal(size=n), rng.normal(size=m) + 0.5
        uw = rng.random(n) if weighted else None
        vw = rng.random(m) if weighted else None
        ref = scipy.stats.wasserstein_distance(u, v, uw, vw)
        assert float(wasserstein_1d(u, v, uw, vw)) == pytest.approx(ref, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("n,m,weighted", [(6, 6, False), (6, 6, True), (5, 8, False), (8, 3, True)])
def test_vs_emd2(p, n, m, weighted):
    rng = np.random.default_rng(int(p * 100) + n + 7 * m)
    for _ in range(4):
        u, v = rng.normal(size=n), 2 * rng.random(m)
        uw = rng.random(n) if weighted else None
        vw = rng.random(m) if weighted else None
        M = np.abs(u[:, None] - v[None, :]) ** p
        ref = _emd2(_norm(uw, n), _norm(vw, m), M)
        assert float(wasserstein_1d(u, v, uw, vw, p=p)) == pytest.approx(ref, rel=1e-10, abs=1e-13)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 8),
    m=st.integers(1, 8),
    p=st.sampled_from([1.0, 2.0, 3.0]),
    seed=st.integers(0, 2**31),
    ties=st.booleans(),
    zeros=st.booleans(),
)
def test_property_vs_emd2(n, m, p, seed, ties, zeros):
    rng = np.random.default_rng(seed)
    if ties:  # values on a coarse grid: many ties within and across the samples
        u, v = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, m).astype(float)
    else:
        u, v = rng.normal(size=n), rng.normal(size=m)
    uw, vw = rng.random(n) + 0.01, rng.random(m) + 0.01
    if zeros and n > 1:
        uw[rng.integers(n)] = 0.0
    M = np.abs(u[:, None] - v[None, :]) ** p
    ref = _emd2(uw / uw.sum(), vw / vw.sum(), M)
    assert float(wasserstein_1d(u, v, uw, vw, p=p)) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_symmetry_translation_and_scaling():
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=9), rng.normal(size=4)
    w = wasserstein_1d(u, v, p=2)
    assert float(wasserstein_1d(v, u, p=2)) == pytest.approx(float(w), rel=1e-12)
    assert float(wasserstein_1d(u + 3.0, v + 3.0, p=2)) == pytest.approx(float(w), rel=1e-10)
    assert float(wasserstein_1d(2 * u, 2 * v, p=2)) == pytest.approx(4 * float(w), rel=1e-12)
    # unnormalised weights are normalised
    uw = rng.random(9)
    assert float(wasserstein_1d(u, v, uw, p=3)) == pytest.approx(float(wasserstein_1d(u, v, 5 * uw, p=3)), rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_batch_equals_per_pair(p, weighted):
    rng = np.random.default_rng(4)
    U = rng.normal(size=(2, 3, 5))
    V = rng.normal(size=(3, 7))  # broadcasts over the leading batch axis
    UW = rng.random((2, 3, 5)) if weighted else None
    VW = rng.random((3, 7)) if weighted else None
    out = wasserstein_1d(U, V, UW, VW, p=p)
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = wasserstein_1d(U[i, j], V[j], None if UW is None else UW[i, j], None if VW is None else VW[j], p=p)
            assert float(out[i, j]) == pytest.approx(float(ref), rel=1e-12, abs=1e-15)
    # 1-D weights broadcast over a batch of values
    w1 = rng.random(5)
    out = wasserstein_1d(U, V, w1, None, p=p)
    ref = wasserstein_1d(U, V, np.broadcast_to(w1, U.shape), None, p=p)
    np.testing.assert_allclose(out, ref, rtol=1e-13)


@pytest.mark.parametrize("case", ["equal", "p1", "general"])
def test_xp(xp, case):
    rng = np.random.default_rng(5)
    u = rng.normal(size=(3, 6))
    v = rng.normal(size=(3, 6 if case == "equal" else 4))
    uw = None if case == "equal" else rng.random((3, 6))
    p = 2 if case == "general" else 1
    ref = wasserstein_1d(u, v, uw, p=p)
    got = wasserstein_1d(asxp(xp, u), asxp(xp, v), None if uw is None else asxp(xp, uw), p=p)
    xp_assert_close(got, ref, xp=xp, rtol=1e-12)
    got32 = wasserstein_1d(asxp(xp, u, xp.float32), asxp(xp, v, xp.float32), p=p)
    assert got32.dtype == xp.float32
    xp_assert_close(got32, wasserstein_1d(u, v, p=p), rtol=1e-4, atol=1e-5)


def test_integer_values_promoted():
    d = wasserstein_1d(np.array([0, 1, 3]), np.array([5, 6, 8]))
    assert d.dtype == np.float64 and float(d) == 5.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(p=0.5), "p must be >= 1"),
        (dict(p=float("nan")), "p must be finite"),
        (dict(u_weights=np.ones(2)), "u_weights has 2 entries"),
        (dict(v_weights=np.ones(4)), "v_weights has 4 entries"),
        (dict(u_weights=np.array([1.0, -1.0, 1.0])), "u_weights has negative weights"),
        (dict(v_weights=np.array([1.0, np.nan, 1.0])), "v_weights contains NaN"),
        (dict(u_weights=np.zeros(3)), "u_weights sums to zero"),
    ],
)
def test_bad_input_wasserstein(kwargs, match):
    u, v = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 3.0])
    with pytest.raises(ValueError, match=match):
        wasserstein_1d(u, v, **kwargs)


def test_bad_values():
    with pytest.raises(ValueError, match="u_values contains NaN"):
        wasserstein_1d(np.array([0.0, np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="v_values is empty"):
        wasserstein_1d(np.array([0.0]), np.array([]))
    with pytest.raises(ValueError, match="do not broadcast"):
        wasserstein_1d(np.zeros((2, 3)), np.zeros((3, 3)))


# --------------------------------------------------------------------------- cdf_emd


def _ordinal_cost(n, x=None):
    x = np.arange(n, dtype=float) if x is None else x
    return np.abs(x[:, None] - x[None, :])


@pytest.mark.parametrize("n", [1, 2, 5, 30])
def test_cdf_emd_vs_emd2(n):
    rng = np.random.default_rng(n)
    for zeros in (0, n // 3):
        a = random_histograms(rng, (n,), zeros=zeros)
        b = random_histograms(rng, (n,))
        assert float(cdf_emd(a, b)) == pytest.approx(_emd2(a, b, _ordinal_cost(n)), rel=1e-10, abs=1e-14)


def test_cdf_emd_spacing_vs_emd2_and_wasserstein_1d():
    rng = np.random.default_rng(7)
    n = 12
    x = np.cumsum(rng.random(n))
    a, b = random_histograms(rng, (n,)), random_histograms(rng, (n,))
    s = np.diff(x)
    ref = _emd2(a, b, _ordinal_cost(n, x))
    assert float(cdf_emd(a, b, spacing=s)) == pytest.approx(ref, rel=1e-10)
    assert float(cdf_emd(a, b, spacing=s)) == pytest.approx(float(wasserstein_1d(x, x, a, b)), rel=1e-10)
    assert float(cdf_emd(a, b, spacing=0.5)) == pytest.approx(0.5 * float(cdf_emd(a, b)), rel=1e-14)


def test_cdf_emd_squared_closed_form():
    # Hou et al.: sum_i (CDF_a(i) - CDF_b(i))^2
    rng = np.random.default_rng(8)
    a, b = random_histograms(rng, (10,)), random_histograms(rng, (10,))
    ref = np.sum((np.cumsum(a) - np.cumsum(b)) ** 2)
    assert float(cdf_emd(a, b, rho=2)) == pytest.approx(ref, rel=1e-12)
    ref3 = np.sum(np.abs(np.cumsum(a) - np.cumsum(b))[:-1] ** 2.5)
    assert float(cdf_emd(a, b, rho=2.5)) == pytest.approx(ref3, rel=1e-12)


def test_martinez_example_values():
    # seed 002: f(elephant) = [0.2, 0.4, 0.2, 0.2], y = [0, 0.5, 0.5, 0]
    a = np.array([0.2, 0.4, 0.2, 0.2])
    b = np.array([0.0, 0.5, 0.5, 0.0])
    assert float(cdf_emd(a, b)) == pytest.approx(0.5)
    np.testing.assert_allclose(cdf_emd_grad(a, b), [1.0, 0.0, -1.0, 0.0], atol=1e-15)


def _zero_sum_dirs(rng, n, k):
    d = rng.normal(size=(k, n))
    return d - d.mean(-1, keepdims=True)


@pytest.mark.parametrize("rho", [1, 2, 1.5, 3])
@pytest.mark.parametrize("with_spacing", [False, True])
def test_cdf_grad_finite_differences(rho, with_spacing):
    rng = np.random.default_rng(int(rho * 10))
    n = 9
    s = rng.random(n - 1) + 0.1 if with_spacing else None
    checked = 0
    while checked < 5:
        a, b = random_histograms(rng, (n,)), random_histograms(rng, (n,))
        phi = np.cumsum(a - b)[:-1]
        if np.min(np.abs(phi)) < 1e-3:  # stay away from the kinks
            continue
        g = np.asarray(cdf_emd_grad(a, b, rho=rho, spacing=s))
        assert abs(g.sum()) < 1e-12
        h = 1e-6
        for d in _zero_sum_dirs(rng, n, 3):
            fd = (cdf_emd(a + h * d, b, rho=rho, spacing=s) - cdf_emd(a - h * d, b, rho=rho, spacing=s)) / (2 * h)
            assert float(g @ d) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
        checked += 1


def test_cdf_grad_subgradient_zero_at_balance():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(cdf_emd_grad(a, a), np.zeros(4))
    # phi crosses zero exactly in the middle: that entry contributes sign 0
    a = np.array([0.3, 0.2, 0.1, 0.4])
    b = np.array([0.2, 0.3, 0.4, 0.1])  # phi = [0.1, 0.0, -0.3]
    g = cdf_emd_grad(a, b)
    raw = np.array([1 + 0 - 1, 0 - 1, -1, 0.0])
    np.testing.assert_allclose(g, raw - raw.mean(), atol=1e-15)


def test_cdf_batch_equals_per_pair():
    rng = np.random.default_rng(9)
    A = random_histograms(rng, (4, 3, 7))
    B = random_histograms(rng, (3, 7))
    for rho in (1, 2):
        val = cdf_emd(A, B, rho=rho)
        grad = cdf_emd_grad(A, B, rho=rho)
        assert val.shape == (4, 3) and grad.shape == (4, 3, 7)
        for i in range(4):
            for j in range(3):
                assert float(val[i, j]) == pytest.approx(float(cdf_emd(A[i, j], B[j], rho=rho)), rel=1e-14)
                np.testing.assert_allclose(grad[i, j], cdf_emd_grad(A[i, j], B[j], rho=rho), atol=1e-14)
    # unbatched a against a batch of b: the gradient takes the broadcast shape
    assert cdf_emd_grad(A[0, 0], B).shape == (3, 7)


@pytest.mark.parametrize("rho", [1, 2])
def test_cdf_xp(xp, rho):
    rng = np.random.default_rng(10)
    a, b = random_histograms(rng, (3, 8)), random_histograms(rng, (8,))
    s = rng.random(7)
    got = cdf_emd(asxp(xp, a), asxp(xp, b), rho=rho, spacing=asxp(xp, s))
    xp_assert_close(got, cdf_emd(a, b, rho=rho, spacing=s), xp=xp, rtol=1e-12)
    g = cdf_emd_grad(asxp(xp, a), asxp(xp, b), rho=rho)
    xp_assert_close(g, cdf_emd_grad(a, b, rho=rho), xp=xp, rtol=1e-12, atol=1e-14)
    # a host list as spacing works in any namespace
    got = cdf_emd(asxp(xp, a), asxp(xp, b), rho=rho, spacing=s.tolist())
    xp_assert_close(got, cdf_emd(a, b, rho=rho, spacing=s), xp=xp, rtol=1e-12)
    g32 = cdf_emd_grad(asxp(xp, a, xp.float32), asxp(xp, b, xp.float32), rho=rho)
    assert g32.dtype == xp.float32
    xp_assert_close(g32, cdf_emd_grad(a, b, rho=rho), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([0.5, 0.5], [0.5, 0.5], dict(rho=0.5), "rho must be >= 1"),
        ([0.5, 0.5], [0.5, 0.5], dict(rho=float("inf")), "rho must be finite"),
        ([0.5, 0.5], [0.2, 0.3, 0.5], {}, "a has 2 bins but b has 3"),
        ([0.5, 0.5], [0.2, 0.9], {}, "same total mass"),
        ([1.5, -0.5], [0.5, 0.5], {}, "a has negative masses"),
        ([0.5, np.nan], [0.5, 0.5], {}, "a contains NaN"),
        ([0.5, 0.5], [0.5, 0.5], dict(spacing=[1.0, 2.0]), "spacing must be a scalar or a 1-D array"),
        ([0.5, 0.5], [0.5, 0.5], dict(spacing=-1.0), "spacing must be >= 0"),
        ([0.3, 0.3, 0.4], [0.5, 0.2, 0.3], dict(spacing=[1.0, -2.0]), "spacing has negative gaps"),
    ],
)
def test_bad_input_cdf(a, b, kwargs, match):
    for f in (cdf_emd, cdf_emd_grad):
        with pytest.raises(ValueError, match=match):
            f(np.asarray(a), np.asarray(b), **kwargs)


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(11)
    a, b = random_histograms(rng, (2, 6)), random_histograms(rng, (6,))
    u, v, uw = rng.normal(size=(2, 5)), rng.normal(size=7), rng.random((2, 5))

    @jax.jit
    def f(a, b, u, v, uw):
        return (
            cdf_emd(a, b),
            cdf_emd_grad(a, b, rho=2),
            wasserstein_1d(u, v),
            wasserstein_1d(u, v, uw, p=2),
            wasserstein_1d(u, u + 1.0, p=3),
        )

    out = f(*(jnp.asarray(x, dtype=jnp.float32) for x in (a, b, u, v, uw)))
    ref = (cdf_emd(a, b), cdf_emd_grad(a, b, rho=2), wasserstein_1d(u, v), wasserstein_1d(u, v, uw, p=2), np.ones(2))
    for o, r in zip(out, ref):
        assert_namespace(o, jnp)
        np.testing.assert_allclose(np.asarray(o), r, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # _validate's float(min)
def test_torch_autograd_matches_closed_form():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    a, b = random_histograms(rng, (5,)), random_histograms(rng, (5,))
    ta = torch.tensor(a, requires_grad=True)
    val = cdf_emd(ta, torch.tensor(b), rho=2)
    (g,) = torch.autograd.grad(val, ta)
    g = g.numpy() - g.numpy().mean()
    np.testing.assert_allclose(g, cdf_emd_grad(a, b, rho=2), atol=1e-12)
