"""Tests of otcore._exact: exact EMD against POT's network simplex and scipy's LP."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import otcore._exact as exact_mod
from otcore._exact import EMDResult, emd, emd2
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)

METHODS = ["auto", "full", "sparse", "linprog"]
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


def check_certificate(res, a, b, M, *, rtol=RTOL):
    """Dual feasibility, strong duality, coupling and <P, M> == cost on the host."""
    f = np.asarray(res.f, dtype=np.float64)
    g = np.asarray(res.g, dtype=np.float64)
    P = np.asarray(res.plan, dtype=np.float64)
    cost = float(res.cost)
    scale = max(float(np.max(M)), 1e-300) * max(float(np.sum(a)), 1e-300)
    viol = np.max(f[:, None] + g[None, :] - M)
    assert viol <= 1e-9 * np.max(M) + 1e-15
    assert float(res.max_violation) == pytest.approx(max(viol, 0.0), abs=1e-12 * np.max(M) + 1e-15)
    assert abs(a @ f + b @ g - cost) <= rtol * scale
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(1), a, rtol=0, atol=1e-12 * a.sum())
    np.testing.assert_allclose(P.sum(0), b * a.sum() / b.sum(), rtol=0, atol=1e-12 * a.sum())
    assert abs(np.sum(P * M) - cost) <= rtol * scale
    # normalisation convention: <a, f> == <b, g>
    assert abs(a @ f - b @ g) <= rtol * scale


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
    costs = {m: float(emd2(a, b, M, method=m)) for m in METHODS}
    ref = ot.emd2(a, b, M)
    for m, c in costs.items():
        assert c == pytest.approx(ref, rel=RTOL), m
    res = emd(a, b, M, method="sparse")
    assert res.method == "sparse" and res.n_rounds >= 1
    check_certificate(res, a, b, M)


@pytest.mark.parametrize("method", ["auto", "sparse", "linprog", "assignment"])
def test_uniform_square(method):
    rng = np.random.default_rng(3)
    n = 60
    a = np.full(n, 1.0 / n)
    M = _euclid(_points(rng, n), _points(rng, n))
    res = emd(a, a, M, method=method)
    assert float(res.cost) == pytest.approx(ot.emd2(a, a, M), rel=RTOL)
    check_certificate(res, a, a, M)
    if method in ("auto", "assignment"):
        assert res.method == "assignment"


def test_assignment_with_zero_bins_and_long_paths():
    # uniform on the nonzero bins only; a 1-D cost whose dual needs long shortest paths
    n = 120
    x = np.sort(np.random.default_rng(0).random(n))
    M = np.abs(x[:, None] - (x[None, :] + 0.3))
    a = np.full(n, 1.0)
    a[[3, 50]] = 0.0
    b = np.full(n, 1.0)
    b[[7, 9]] = 0.0
    res = emd(a, b, M, method="assignment")
    assert res.method == "assignment"
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL)
    check_certificate(res, a, b, M)


def test_assignment_fallback_certifies(monkeypatch):
    # when Bellman-Ford is cut short the duals come from column generation
    monkeypatch.setattr(exact_mod, "_BF_MAX_ITER", 1)
    rng = np.random.default_rng(1)
    n = 40
    a = np.full(n, 1.0 / n)
    M = _euclid(_points(rng, n), _points(rng, n))
    res = emd(a, a, M, method="assignment")
    assert float(res.cost) == pytest.approx(ot.emd2(a, a, M), rel=RTOL)
    check_certificate(res, a, a, M)


def test_assignment_rejects_nonuniform():
    a, b, M = _problem(0, 10, 10)
    with pytest.raises(ValueError, match="uniform"):
        emd(a, b, M, method="assignment")
    with pytest.raises(ValueError, match="uniform"):
        emd(np.full(5, 0.2), np.full(4, 0.25), np.ones((5, 4)), method="assignment")


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


@pytest.mark.parametrize("method", ["full", "sparse", "linprog"])
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
            check_certificate(
                EMDResult(
                    cost=res.cost[i, j], f=res.f[i, j], g=res.g[i, j], method=res.method,
                    status="optimal", max_violation=res.max_violation[i, j],
                    _coo=(res.plan_coo(i * 3 + j),), _shape=(n, m), _xp=np, _dtype=np.float64,
                ),
                A[i, j], B[j], M,
            )  # fmt: skip
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
@given(_metric_problem(), st.sampled_from(["sparse", "linprog"]))
def test_property_identity_and_symmetry(prob, method):
    M, (a, b, _) = prob
    assert abs(float(emd2(a, a, M, method=method))) <= 1e-12
    ab = float(emd2(a, b, M, method=method))
    ba = float(emd2(b, a, M, method=method))
    assert ab == pytest.approx(ba, rel=1e-9, abs=1e-14)
    # symmetric cost: W(a, b) with M equals W(b, a) with M.T
    assert float(emd2(b, a, M.T, method=method)) == pytest.approx(ab, rel=1e-9, abs=1e-14)


@settings(max_examples=25, deadline=None)
@given(_metric_problem(), st.sampled_from(["sparse", "linprog"]))
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
    with pytest.raises(ValueError, match="unknown method 'simplex'"):
        emd(a, b, M, method="simplex")
    with pytest.raises(ValueError, match="tol must be >= 0"):
        emd(a, b, M, tol=-1.0)
    with pytest.raises(ValueError, match="max_rounds must be >= 1"):
        emd(a, b, M, max_rounds=0)
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


def test_max_rounds_exhausted(monkeypatch):
    # pricing that never certifies: the error names max_rounds
    monkeypatch.setattr(exact_mod, "_SINKHORN_EPS", (0.5,))
    a, b, M = _problem(21, 60, 60)
    monkeypatch.setattr(exact_mod, "_K_INIT", 1)
    with pytest.raises(RuntimeError, match="max_rounds=1"):
        emd(a, b, M, method="sparse", max_rounds=1)


def test_zero_tolerance_terminates():
    a, b, M = _problem(30, 70, 70)
    res = emd(a, b, M, method="sparse", tol=0.0)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL)
    check_certificate(res, a, b, M)


def test_sparse_medium_against_linprog():
    # large enough for several pricing rounds and the blocked pricing
    a, b, M = _problem(31, 300, 250, 10, 5)
    res = emd(a, b, M, method="sparse")
    assert float(res.cost) == pytest.approx(float(emd2(a, b, M, method="linprog")), rel=RTOL)
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL)
    check_certificate(res, a, b, M)
    assert len(res.plan_coo()[0]) <= 300 + 250 - 1


def test_blocked_pricing_and_candidates():
    # tiny row blocks exercise the block boundaries of pricing, candidates and certificate
    a, b, M = _problem(32, 40, 35)
    C = M / M.max()
    f = np.random.default_rng(0).random(40) * 0.3
    g = np.random.default_rng(1).random(35) * 0.3
    r1, c1, v1 = exact_mod._price(C, f, g, 1e-9, 3, block=7)
    r2, c2, v2 = exact_mod._price(C, f, g, 1e-9, 3)
    assert v1 == pytest.approx(v2)
    assert v1 == pytest.approx(max(0.0, float(np.max(f[:, None] + g[None, :] - C))))
    R = C - f[:, None] - g[None, :]
    assert np.all(R[r1, c1] < -1e-9)
    assert exact_mod._certify(M, f, g, block=5) == pytest.approx(exact_mod._certify(M, f, g))


@pytest.mark.parametrize("greedy_min", [0, 10**12])
def test_sparse_feasible_start_variants(monkeypatch, greedy_min):
    # greedy feasible plan (used for large problems) and the north-west corner rule
    monkeypatch.setattr(exact_mod, "_GREEDY_MIN", greedy_min)
    a, b, M = _problem(33, 120, 90, 6, 3)
    res = emd(a, b, M, method="sparse")
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL)
    check_certificate(res, a, b, M)


def test_greedy_and_northwest_are_feasible():
    rng = np.random.default_rng(34)
    a = random_histograms(rng, (30,))
    b = random_histograms(rng, (25,))
    for i, j in [exact_mod._northwest(a, b), exact_mod._greedy(a, b, rng.integers(0, 30, 80), rng.integers(0, 25, 80), rng.random(80))]:
        # the edges admit a coupling: the LP restricted to them is feasible
        P = np.zeros((30, 25))
        P[i, j] = 1.0
        res = emd(a, b, np.where(P > 0, 0.0, 1.0), method="linprog")
        assert float(res.cost) <= 1e-12


# --- the full LP on highspy (small problems, "auto" up to n*m = _FULL_MAX) -------------


@pytest.mark.parametrize("n, m, za, zb", [(1, 1, 0, 0), (1, 5, 0, 0), (8, 8, 0, 0), (8, 8, 2, 3), (32, 32, 0, 0), (30, 45, 4, 6)])
def test_full_agrees_with_pot_and_linprog(n, m, za, zb):
    a, b, M = _problem(n * 7 + m, n, m, za, zb)
    res = emd(a, b, M, method="full")
    assert res.method == "full" and res.status == "optimal"
    ref = ot.emd2(a, b, M)
    lp = float(emd2(a, b, M, method="linprog"))
    assert float(res.cost) == pytest.approx(ref, rel=RTOL, abs=1e-15)
    assert float(res.cost) == pytest.approx(lp, rel=RTOL, abs=1e-15)
    check_certificate(res, a, b, M)


def test_auto_uses_full_for_small_problems():
    a, b, M = _problem(3, 20, 30)
    assert emd(a, b, M).method == "full"
    a, b, M = _problem(4, 120, 120)
    assert emd(a, b, M).method == "sparse"


def test_full_batch_reuses_model_and_matches_pairs():
    rng = np.random.default_rng(11)
    n, m = 16, 12
    A = random_histograms(rng, (40, n))
    B = random_histograms(rng, (40, m))
    A[3, :4] = 0.0  # a different support: its own model
    A[3] /= A[3].sum()
    M = _euclid(_points(rng, n), _points(rng, m))
    built = []
    orig = exact_mod._FullModel.__init__

    def counting(self, C):
        built.append(C.shape)
        orig(self, C)

    exact_mod._LOCAL.cache = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exact_mod._FullModel, "__init__", counting)
        res = emd(A, B, M, method="full")
        assert len(built) == 2  # the full support and the one with zero bins
        emd2(A[5], B[5], M)  # same M in a later call: the cached model again
        assert len(built) == 2
    ref = np.array([ot.emd2(A[k], B[k], M) for k in range(40)])
    np.testing.assert_allclose(np.asarray(res.cost), ref, rtol=RTOL, atol=1e-15)
    for k in (0, 3, 39):
        one = emd(A[k], B[k], M, method="full")
        assert float(one.cost) == float(res.cost[k])  # bitwise: order-independent
        np.testing.assert_array_equal(np.asarray(one.f), np.asarray(res.f[k]))
        check_certificate(one, A[k], B[k], M)
    assert np.all(np.asarray(res.max_violation) <= 1e-12)


def test_full_new_cost_matrix_not_confused_with_cached():
    a, b, M = _problem(21, 10, 10)
    c1 = float(emd2(a, b, M))
    c2 = float(emd2(a, b, 2.0 * M))
    assert c2 == pytest.approx(2.0 * c1, rel=1e-12)
    assert c2 == pytest.approx(ot.emd2(a, b, 2.0 * M), rel=RTOL)


def test_full_ties_and_degenerate():
    rng = np.random.default_rng(2)
    n = m = 12
    a = rng.integers(0, 4, n).astype(float)
    a[0] += 1.0
    b = np.roll(a, 3)
    M = rng.integers(0, 3, (n, m)).astype(float)  # many equal costs
    res = emd(a, b, M, method="full")
    assert float(res.cost) == pytest.approx(ot.emd2(a, b, M), rel=RTOL, abs=1e-14)
    check_certificate(res, a, b, M)
    res = emd(a, a, np.ones((n, m)), method="full")
    assert float(res.cost) == pytest.approx(a.sum(), rel=1e-12)


def test_auto_prefers_assignment_for_small_uniform_square():
    _, _, M = _problem(8, 10, 10)
    a = np.full(10, 0.1)
    res = emd(a, a[::-1].copy(), M)
    assert res.method == "assignment"
    assert float(res.cost) == pytest.approx(ot.emd2(a, a, M), rel=RTOL, abs=1e-15)
