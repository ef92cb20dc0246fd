"""Tests of otcore._exact: the network simplex against POT's network simplex and scipy's LP."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otcore._exact import EMDResult, emd, emd2, is_monge
from otcore._cost import ordinal_cost
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)

METHODS = ["auto", "simplex", "linprog"]
RTOL = 1e-9


def _points(rng, n, d=2):
    return rng.random((n, d))


def _euclid(x, y):
    return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


def _problem(seed, n, m, zeros_a=0, zeros_b=0):
    rng = np.random.default_rng(seed)
    a = random_histograms(rng, (n,), zeros=zeros_a)
    b = random_histograms(rng, (m,), zeros=zeros_b)
    M = _euclid(_points(rng, n), _points(rng, m))
    return a, b, M


def check_certificate(res, a, b, M, *, exact_marginals=False):
    """The certificate recomputed independently on the host, for every pair of a batch:
    the plan is a coupling, the duals are feasible, the gap is zero, all within the
    tolerance the result states, and the stated figures are honest."""
    P = np.asarray(res.plan, dtype=np.float64)
    f = np.asarray(res.f, dtype=np.float64)
    g = np.asarray(res.g, dtype=np.float64)
    cost = np.asarray(res.cost, dtype=np.float64)
    status = res.status if isinstance(res.status, tuple) else (res.status,)
    a = np.broadcast_to(a, f.shape)
    b = np.broadcast_to(b, g.shape)
    b = b * (a.sum(-1) / b.sum(-1))[..., None]
    mass = a.sum(-1)
    scale = max(float(np.max(M)), 1e-300)
    tol = res.tol
    assert np.all(P >= 0)
    resid = np.maximum(np.abs(P.sum(-1) - a).max(-1), np.abs(P.sum(-2) - b).max(-1))
    viol = np.maximum(0, (f[..., :, None] + g[..., None, :] - M).max((-2, -1)))
    gap = np.abs(cost - (a * f).sum(-1) - (b * g).sum(-1))
    for k, st_ in enumerate(status):
        assert st_ == "optimal", st_
    assert np.all(resid <= tol * mass)
    assert np.all(viol <= tol * scale)
    assert np.all(gap <= tol * scale * mass + 1e-300)
    np.testing.assert_allclose(np.asarray(res.max_violation), viol, rtol=1e-6, atol=1e-15 * scale)
    np.testing.assert_allclose((P * M).sum((-2, -1)), cost, rtol=1e-12, atol=1e-300)
    # normalisation convention: <a, f> == <b, g>
    assert np.all(np.abs((a * f).sum(-1) - (b * g).sum(-1)) <= tol * scale * mass + 1e-300)
    if exact_marginals:  # the tree flows: marginals exact to a few ulps of each mass
        np.testing.assert_allclose(P.sum(-1), a, rtol=1e-13, atol=0)
        np.testing.assert_allclose(P.sum(-2), b, rtol=1e-13, atol=0)


# --- agreement with POT and with each other ------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "n, m, za, zb",
    [(1, 1, 0, 0), (1, 7, 0, 0), (6, 1, 0, 0), (20, 20, 0, 0), (37, 23, 0, 0), (25, 60, 3, 7), (80, 80, 5, 0)],
)
def test_agrees_with_pot(method, n, m, za, zb):
    a, b, M = _problem(n * 100 + m, n, m, za, zb)
    res = emd(a, b, M, method=method)
    ref = ot.emd2(a, b, M)
    assert isinstance(res, EMDResult)
    assert res.status == "optimal"
    assert float(res.cost) == pytest.approx(ref, rel=RTOL, abs=1e-15)
    check_certificate(res, a, b, M)


def test_methods_agree_larger():
    a, b, M = _problem(5, 150, 130, 4, 2)
    ref = ot.emd2(a, b, M)
    for method in METHODS:
        assert float(emd2(a, b, M, method=method)) == pytest.approx(ref, rel=RTOL), method
    res = emd(a, b, M, method="simplex")
    assert res.method == "simplex" and res.n_pivots >= 1
    check_certificate(res, a, b, M, exact_marginals=True)


@pytest.mark.parametrize("family", ["shifted", "sqeuclid3d", "highdim", "ints"])
def test_families_against_pot(family):
    rng = np.random.default_rng(17)
    n, m = 120, 90
    if family == "shifted":
        M = _euclid(rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 5.0)
    elif family == "sqeuclid3d":
        M = _euclid(rng.normal(size=(n, 3)), rng.normal(size=(m, 3)) + 2.0) ** 2
    elif family == "highdim":
        M = _euclid(rng.normal(size=(n, 40)), rng.normal(size=(m, 40)))
    else:
        M = rng.integers(0, 3, size=(n, m)).astype(float)
    a = random_histograms(rng, (n,), zeros=3)
    b = random_histograms(rng, (m,), zeros=2)
    res = emd(a, b, M)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M, numItermax=10**7), rel=RTOL, abs=1e-15)
    check_certificate(res, a, b, M, exact_marginals=True)


# --- structure: Monge costs ----------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 1.5])
def test_monge_cost_uses_northwest_corner(p):
    from otcore import wasserstein_1d

    rng = np.random.default_rng(3)
    t = np.sort(rng.random(30))
    s = np.sort(rng.random(20))
    M = np.abs(t[:, None] - s[None, :]) ** p
    assert is_monge(M)
    A = random_histograms(rng, (5, 30), zeros=4)
    B = random_histograms(rng, (5, 20), zeros=3)
    res = emd(A, B, M)
    assert res.method == "monge" and res.n_pivots == 0
    ref = [float(wasserstein_1d(t, s, A[k], B[k], p=p)) for k in range(5)]
    np.testing.assert_allclose(np.asarray(res.cost), ref, rtol=1e-9)
    check_certificate(res, A, B, M)


def test_monge_detection():
    assert is_monge(np.asarray(ordinal_cost(7, p=2)))
    assert is_monge(np.asarray(ordinal_cost(7, p=1)))
    assert not is_monge(np.asarray(ordinal_cost(7, p=0.5)))  # concave: not Monge
    assert not is_monge(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert is_monge(np.ones((1, 5))) and is_monge(np.ones((4, 1)))
    # a non-Monge cost still solved by the simplex
    M = np.asarray(ordinal_cost(6, p=0.5))
    a, b = np.array([0.5, 0, 0, 0, 0, 0.5]), np.array([0, 0.5, 0.5, 0, 0, 0])
    res = emd(a, b, M)
    assert res.method == "simplex"
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL)


# --- extreme inputs ------------------------------------------------------------------


def test_tiny_mass_differences_are_transported():
    a = np.full(4, 0.25)
    b = a + np.array([1e-10, 0, 0, -1e-10])
    x = np.arange(4.0)
    M = np.abs(x[:, None] - x[None, :])
    res = emd(a, b, M, method="simplex")
    assert float(res.cost) == pytest.approx(3e-10, rel=1e-5)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=1e-10)
    check_certificate(res, a, b, M)


@pytest.mark.parametrize("big", [1e9, 1e12])
def test_forbidden_pair_cost_range(big):
    a, b, M = _problem(41, 30, 30)
    M[3, 4] = big
    res = emd(a, b, M)
    ref = ot.emd2(a, b, M, numItermax=10**7)
    assert float(res.cost) == pytest.approx(ref, rel=1e-10)
    assert float(emd2(a, b, M, method="linprog")) == pytest.approx(ref, rel=1e-8)
    check_certificate(res, a, b, M, exact_marginals=True)


def test_masses_down_to_1e300():
    rng = np.random.default_rng(5)
    n = 12
    a = random_histograms(rng, (n,)) * 1e-300
    b = random_histograms(rng, (n,)) * 1e-300
    M = _euclid(_points(rng, n), _points(rng, n))
    res = emd(a, b, M)
    ref = ot.emd2(a / a.sum(), b / b.sum(), M) * a.sum()
    assert float(res.cost) == pytest.approx(ref, rel=1e-10)
    check_certificate(res, a, b, M, exact_marginals=True)
    # mixed: some bins near 1e-300 next to bins of order one
    a = random_histograms(rng, (n,))
    a[[1, 4]] = [1e-300, 3e-250]
    b = random_histograms(rng, (n,))
    b[7] = 2e-290
    b *= a.sum() / b.sum()
    res = emd(a, b, M)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=1e-10)
    check_certificate(res, a, b, M)
    P = np.asarray(res.plan)
    assert P[1].sum() == pytest.approx(1e-300, rel=1e-12) and P[:, 7].sum() > 0


def test_empty_batch():
    M = np.ones((4, 3))
    c = emd2(np.zeros((0, 4)), np.zeros((0, 3)), M)
    assert c.shape == (0,)
    res = emd(np.zeros((0, 4)), np.zeros((0, 3)), M)
    assert res.f.shape == (0, 4) and res.plan.shape == (0, 4, 3) and res.status == ()


def test_no_warnings_leak():
    import warnings

    a, b, M = _problem(2, 30, 20, 5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emd(a, b, M)
        emd(a, b, M * 1e12, method="linprog")
        emd(a * 1e-300, b * 1e-300, M)


_masses = st.one_of(
    st.just(0.0), st.floats(1e-300, 1e-250), st.floats(1e-12, 1e-8), st.floats(0.01, 1.0)
)


@st.composite
def _extreme_problem(draw):
    n = draw(st.integers(1, 7))
    m = draw(st.integers(1, 7))
    a = np.array(draw(st.lists(_masses, min_size=n, max_size=n)))
    b = np.array(draw(st.lists(_masses, min_size=m, max_size=m)))
    if a.sum() == 0:
        a[0] = 1.0
    if b.sum() == 0:
        b[-1] = 1.0
    b = b * (a.sum() / b.sum())
    kind = draw(st.sampled_from(["ties", "wide", "uniform"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    if kind == "ties":
        M = rng.integers(0, 3, size=(n, m)).astype(float)
    elif kind == "wide":
        M = 10.0 ** rng.uniform(-12, 12, size=(n, m))
    else:
        M = rng.random((n, m))
    return a, b, M


@settings(max_examples=60, deadline=None)
@given(_extreme_problem())
def test_property_extreme_against_pot_and_linprog(prob):
    a, b, M = prob
    res = emd(a, b, M)
    check_certificate(res, a, b, M)
    s = a.sum()
    ref = ot.emd2(a / s, b / b.sum(), M, numItermax=10**6) * s
    scale = M.max() * s
    assert abs(float(res.cost) - ref) <= 1e-10 * max(abs(ref), 1e-300) + 1e-13 * scale
    if a.min() == 0 or a[a > 0].min() > 1e-9 * s and b[b > 0].min() > 1e-9 * s:
        lp = float(emd2(a, b, M, method="linprog"))
        assert abs(lp - float(res.cost)) <= 1e-8 * scale


@pytest.mark.parametrize("method", METHODS)
def test_ties_integer_costs(method):
    rng = np.random.default_rng(7)
    n, m = 30, 25
    M = rng.integers(0, 4, size=(n, m)).astype(float)
    a = random_histograms(rng, (n,))
    b = random_histograms(rng, (m,))
    res = emd(a, b, M, method=method)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL, abs=1e-15)
    check_certificate(res, a, b, M)
    # fully tied: every plan is optimal
    res = emd(a, b, np.ones((n, m)), method=method)
    assert float(res.cost) == pytest.approx(1.0, rel=RTOL)
    check_certificate(res, a, b, np.ones((n, m)))


@pytest.mark.parametrize("method", METHODS)
def test_zero_cost(method):
    a, b, _ = _problem(2, 8, 9)
    res = emd(a, b, np.zeros((8, 9)), method=method)
    assert float(res.cost) == 0.0
    check_certificate(res, a, b, np.zeros((8, 9)))


@pytest.mark.parametrize("method", METHODS)
def test_integer_masses(method):
    a = np.array([3, 0, 1, 2])
    b = np.array([2, 2, 2])
    M = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0], [3, 2, 1]])
    res = emd(a, b, M, method=method)
    assert res.cost.dtype == np.float64
    ref = ot.emd2(a.astype(float), b.astype(float), M.astype(float))
    assert float(res.cost) == pytest.approx(ref, rel=RTOL)
    check_certificate(res, a.astype(float), b.astype(float), M.astype(float))


@pytest.mark.parametrize("method", METHODS)
def test_float32(method):
    a, b, M = _problem(11, 40, 30, 2, 1)
    a32, b32, M32 = a.astype(np.float32), b.astype(np.float32), M.astype(np.float32)
    res = emd(a32, b32, M32, method=method)
    assert res.cost.dtype == np.float32 and res.f.dtype == np.float32
    assert res.plan.dtype == np.float32
    ref = ot.emd2(a, b, M)
    assert float(res.cost) == pytest.approx(ref, rel=1e-5)


def test_unequal_mass_within_tolerance_rescales_b():
    a, b, M = _problem(4, 12, 15)
    res = emd(a, b * (1 + 1e-8), M)
    np.testing.assert_allclose(np.asarray(res.plan).sum(0), b, atol=1e-12)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=1e-7)


def test_total_mass_not_one():
    a, b, M = _problem(8, 20, 18)
    res = emd(7.0 * a, 7.0 * b, M)
    assert float(res.cost) == pytest.approx(7.0 * ot.emd2(a, b, M), rel=RTOL)
    check_certificate(res, 7.0 * a, 7.0 * b, M)


# --- batches --------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_per_pair(method):
    rng = np.random.default_rng(9)
    n, m = 15, 12
    A = random_histograms(rng, (2, 3, n))
    B = random_histograms(rng, (3, m))  # broadcasts against (2, 3)
    M = _euclid(_points(rng, n), _points(rng, m))
    res = emd(A, B, M, method=method)
    assert res.cost.shape == (2, 3)
    assert res.f.shape == (2, 3, n) and res.g.shape == (2, 3, m)
    assert res.plan.shape == (2, 3, n, m)
    assert res.max_violation.shape == (2, 3)
    assert isinstance(res.status, tuple) and len(res.status) == 6
    for i in range(2):
        for j in range(3):
            one = emd(A[i, j], B[j], M, method=method)
            assert float(res.cost[i, j]) == pytest.approx(float(one.cost), rel=RTOL)
            np.testing.assert_allclose(res.plan[i, j].sum(0), B[j], atol=1e-12)
            np.testing.assert_allclose(res.f[i, j], one.f, rtol=0, atol=1e-12)
            np.testing.assert_allclose(res.plan[i, j], one.plan, rtol=0, atol=1e-15)
    check_certificate(res, A, np.broadcast_to(B, A.shape[:-1] + (m,)), M)
    c2 = emd2(A[0], B, M, method=method)
    np.testing.assert_allclose(c2, res.cost[0], rtol=RTOL)


def test_batch_broadcast_single_source():
    rng = np.random.default_rng(10)
    a = random_histograms(rng, (10,))
    B = random_histograms(rng, (4, 10))
    M = _euclid(_points(rng, 10), _points(rng, 10))
    c = emd2(a, B, M)
    assert c.shape == (4,)
    np.testing.assert_allclose(c, [ot.emd2(a, B[k], M) for k in range(4)], rtol=RTOL)


# --- hypothesis properties ------------------------------------------------------------


@st.composite
def _metric_problem(draw, max_n=12):
    n = draw(st.integers(2, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 2))
    M = _euclid(pts, pts)
    hs = [random_histograms(rng, (n,), zeros=int(rng.integers(0, n // 2 + 1))) for _ in range(3)]
    return M, hs


@settings(max_examples=25, deadline=None)
@given(_metric_problem(), st.sampled_from(METHODS))
def test_property_identity_and_symmetry(prob, method):
    M, (a, b, _) = prob
    assert abs(float(emd2(a, a, M, method=method))) <= 1e-12
    ab = float(emd2(a, b, M, method=method))
    ba = float(emd2(b, a, M, method=method))
    assert ab == pytest.approx(ba, rel=1e-9, abs=1e-14)
    # symmetric cost: W(a, b) with M equals W(b, a) with M.T
    assert float(emd2(b, a, M.T, method=method)) == pytest.approx(ab, rel=1e-9, abs=1e-14)


@settings(max_examples=25, deadline=None)
@given(_metric_problem(), st.sampled_from(METHODS))
def test_property_triangle_inequality(prob, method):
    M, (a, b, c) = prob
    ab = float(emd2(a, b, M, method=method))
    bc = float(emd2(b, c, M, method=method))
    ac = float(emd2(a, c, M, method=method))
    assert ac <= ab + bc + 1e-12


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 10),
    st.integers(1, 10),
    st.integers(0, 2**31 - 1),
    st.floats(1e-3, 1e3),
    st.sampled_from(METHODS),
)
def test_property_scaling(n, m, seed, lam, method):
    rng = np.random.default_rng(seed)
    a = random_histograms(rng, (n,))
    b = random_histograms(rng, (m,))
    M = rng.random((n, m))
    c = float(emd2(a, b, M, method=method))
    assert float(emd2(a, b, lam * M, method=method)) == pytest.approx(lam * c, rel=1e-9, abs=1e-15)
    assert c == pytest.approx(ot.emd2(a, b, M), rel=1e-9, abs=1e-15)


# --- array namespaces -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["auto", "linprog"])
def test_namespaces(xp, method):
    a, b, M = _problem(12, 9, 7, 1, 1)
    res = emd(asxp(xp, a), asxp(xp, b), asxp(xp, M), method=method)
    ref = ot.emd2(a, b, M)
    xp_assert_close(res.cost, np.asarray(ref), xp=xp, rtol=RTOL, dtype=xp.float64)
    for arr in (res.f, res.g, res.plan, res.max_violation):
        assert_namespace(arr, xp)
    assert res.plan.shape == (9, 7)
    xp_assert_close(emd2(asxp(xp, a), asxp(xp, b), asxp(xp, M)), np.asarray(ref), xp=xp, rtol=RTOL)


def test_namespace_float32(xp):
    a, b, M = _problem(13, 6, 6)
    res = emd(asxp(xp, a, xp.float32), asxp(xp, b, xp.float32), asxp(xp, M, xp.float32))
    assert res.cost.dtype == xp.float32 and res.plan.dtype == xp.float32
    xp_assert_close(res.cost, np.asarray(ot.emd2(a, b, M)), xp=xp, rtol=1e-5)


# --- bad input ------------------------------------------------------------------------


def _ok():
    return np.array([0.5, 0.5]), np.array([0.25, 0.75]), np.array([[0.0, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize(
    "which, value, match",
    [
        ("a", np.array([1.5, -0.5]), "a has negative masses"),
        ("b", np.array([np.nan, 1.0]), "b contains NaN or infinite masses"),
        ("a", np.array([np.inf, 1.0]), "a contains NaN or infinite masses"),
        ("M", np.array([[0.0, -1.0], [1.0, 0.0]]), "M has negative costs"),
        ("M", np.array([[0.0, np.nan], [1.0, 0.0]]), "M contains NaN or infinite costs"),
        ("M", np.array([[0.0, np.inf], [1.0, 0.0]]), "M contains NaN or infinite costs"),
        ("a", np.array([]), "a is empty"),
        ("b", np.zeros(2), "b has an all-zero histogram"),
        ("M", np.ones((3, 2)), "M has 3 rows"),
        ("M", np.ones((2, 3)), "M has 3 columns"),
        ("M", np.ones(4), "M must be a 2-D cost matrix"),
        ("M", np.ones((2, 2, 1)), "M must be a 2-D cost matrix"),
        ("a", np.float64(1.0), "a must be a histogram"),
    ],
)
def test_bad_input(which, value, match):
    args = dict(zip("abM", _ok()))
    args[which] = value
    with pytest.raises(ValueError, match=match):
        emd(args["a"], args["b"], args["M"])
    with pytest.raises(ValueError, match=match):
        emd2(args["a"], args["b"], args["M"], method="linprog")


def test_unequal_masses_message_shows_sums():
    a, b, M = _ok()
    with pytest.raises(ValueError, match=r"sum\(a\) = 1.*sum\(b\) = 2"):
        emd(a, 2 * b, M)


def test_bad_batch_and_options():
    a, b, M = _ok()
    with pytest.raises(ValueError, match="do not broadcast"):
        emd(np.ones((3, 2)) / 2, np.ones((2, 2)) / 2, M)
    with pytest.raises(ValueError, match="unknown method 'sparse'"):
        emd(a, b, M, method="sparse")
    with pytest.raises(ValueError, match="tol must be >= 0"):
        emd(a, b, M, tol=-1.0)
    with pytest.raises(TypeError, match="numItermax"):
        emd(a, b, M, numItermax=10)
    with pytest.raises(TypeError, match="complex"):
        emd(a.astype(complex), b, M)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same array library"):
        emd(torch.asarray(a), b, M)


def test_failed_solve_raises_with_status(monkeypatch):
    import scipy.optimize

    class _Res:
        status = 2
        message = "The problem is infeasible. (HiGHS Status 8: model_status is Infeasible)"

    monkeypatch.setattr(scipy.optimize, "linprog", lambda *args, **kw: _Res())
    a, b, M = _ok()
    with pytest.raises(RuntimeError, match="status 2: The problem is infeasible"):
        emd(a, b, M, method="linprog")




def test_linprog_certificate_is_honest_about_tiny_mass_differences():
    # HiGHS's absolute tolerances swallow a 1e-10 mass difference: the certificate
    # must say so instead of calling the result optimal
    a = np.full(4, 0.25)
    b = a + np.array([1e-10, 0, 0, -1e-10])
    x = np.arange(4.0)
    M = np.abs(x[:, None] - x[None, :])
    res = emd(a, b, M, method="linprog")
    if abs(float(res.cost) - 3e-10) > 1e-15:
        assert res.status == "inaccurate"
    assert float(res.residual) == pytest.approx(
        max(np.abs(np.asarray(res.plan).sum(1) - a).max(), np.abs(np.asarray(res.plan).sum(0) - b).max()),
        rel=1e-6, abs=1e-300,
    )


def test_status_is_never_optimal_when_the_certificate_fails():
    a, b, M = _problem(3, 10, 10)
    res = emd(a, b, M, tol=0.0)  # nothing survives a zero tolerance unless exact
    for ok, fig in [(res.status == "optimal", (res.residual, res.max_violation, res.gap))]:
        assert ok == all(float(x) == 0.0 for x in fig)
