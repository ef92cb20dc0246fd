"""Tests of otcore.sinkhorn against POT, exact EMD, finite differences and Algorithm 1."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otcore._validate import ConvergenceWarning
from otcore._sinkhorn import SINKHORN_METHODS, SinkhornResult, sinkhorn, sinkhorn2
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)


def problem(n=8, m=None, *, N=None, seed=0, zeros=0):
    rng = np.random.default_rng(seed)
    m = n if m is None else m
    x = rng.random((n, 2))
    y = rng.random((m, 2))
    M = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    M /= M.max()
    sa = (n,) if N is None else (N, n)
    sb = (m,) if N is None else (N, m)
    return random_histograms(rng, sa, zeros), random_histograms(rng, sb), M


def alg1(a, b, M, reg, n_iter):
    """Algorithm 1 of Dhariwal & Inala, verbatim (lambda = 1/reg, one pair, row-vector form)."""
    K = np.exp(-M / reg)
    KM = K * M
    u = np.ones((1, len(a))) / len(a)
    for _ in range(n_iter):
        u = a / ((b / (u @ K)) @ K.T)
    v = b / (u @ K)
    loss = np.sum(u * (v @ KM.T))
    alpha = np.log(u) * reg
    return loss, (alpha - alpha.mean())[0]


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("method", ["scaling", "log"])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.03])
def test_matches_pot(method, reg):
    a, b, M = problem(12, 9, seed=1)
    res = sinkhorn(a, b, M, reg, method=method, tol=1e-13, n_iter=20000)
    assert res.converged and res.method == method
    P = ot.sinkhorn(a, b, M, reg, stopThr=1e-15, numItermax=20000)
    np.testing.assert_allclose(res.plan, P, rtol=1e-8, atol=1e-8 * P.max())
    np.testing.assert_allclose(res.cost, np.sum(P * M), rtol=1e-8)
    np.testing.assert_allclose(
        sinkhorn2(a, b, M, reg, method=method, tol=1e-13),
        ot.sinkhorn2(a, b, M, reg, stopThr=1e-15, numItermax=20000),
        rtol=1e-8,
    )
    # reg_cost = <P, M> + reg * sum P (log P - 1)
    ent = np.sum(P * (np.log(P) - 1))
    np.testing.assert_allclose(res.reg_cost, np.sum(P * M) + reg * ent, rtol=1e-8)


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_fixed_iterations_is_algorithm_1(method):
    a, b, M = problem(10, seed=2)
    for n_iter in (1, 7, 50):
        loss, grad = alg1(a, b, M, 0.1, n_iter)
        res = sinkhorn(a, b, M, 0.1, n_iter=n_iter, tol=None, method=method)
        assert res.n_iter == n_iter
        np.testing.assert_allclose(res.cost, loss, rtol=1e-12)
        np.testing.assert_allclose(res.grad, grad, rtol=1e-10, atol=1e-13)


def test_small_reg_approaches_emd():
    a, b, M = problem(10, seed=3)
    exact = ot.emd2(a, b, M)
    errs = []
    for reg in (1e-1, 1e-2, 2e-3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = sinkhorn(a, b, M, reg, eps_scaling=True, tol=1e-9, n_iter=20000)
        errs.append(abs(float(res.cost) - exact))
    assert errs[-1] < 2e-3 * exact + 1e-4
    assert errs[0] >= errs[-1]


def test_grad_tends_to_centered_exact_dual():
    # a nondegenerate problem: random costs, generic masses -> unique duals
    rng = np.random.default_rng(4)
    n = 6
    M = rng.random((n, n))
    a = random_histograms(rng, (n,))
    b = random_histograms(rng, (n,))
    _, log = ot.emd(a, b, M, log=True)
    u = log["u"] - log["u"].mean()
    res = sinkhorn(a, b, M, 1e-3, eps_scaling=True, tol=1e-10, n_iter=50000)
    assert res.converged and res.method == "log"
    np.testing.assert_allclose(res.grad, u, atol=2e-2)
    coarse = sinkhorn(a, b, M, 1e-1, tol=1e-10)
    assert np.abs(res.grad - u).max() < np.abs(coarse.grad - u).max()


# --------------------------------------------------------------------------- Frogner gradient


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_gradient_finite_differences(method):
    a, b, M = problem(7, 6, seed=5)
    reg = 0.1
    kw = dict(method=method, tol=1e-14, n_iter=50000)
    res = sinkhorn(a, b, M, reg, **kw)
    rng = np.random.default_rng(0)
    h = 1e-5
    for _ in range(4):
        d = rng.standard_normal(a.shape)
        d -= d.mean()  # zero-sum direction: stays on the simplex
        fp = float(sinkhorn(a + h * d, b, M, reg, **kw).reg_cost)
        fm = float(sinkhorn(a - h * d, b, M, reg, **kw).reg_cost)
        fd = (fp - fm) / (2 * h)
        np.testing.assert_allclose(fd, float(res.grad @ d), rtol=1e-6)


def test_full_numerical_gradient_minus_grad_is_constant():
    # Dhariwal & Inala: the numerical gradient of the loss minus ``grad`` is c * 1. Off the
    # simplex the loss is extended by renormalising a (the masses must match).
    a, b, M = problem(6, seed=6)
    reg = 0.2

    def loss(x):
        return float(sinkhorn(x / x.sum(), b, M, reg, tol=1e-14, n_iter=50000).reg_cost)

    h = 1e-6
    num = np.array([(loss(a + h * e) - loss(a - h * e)) / (2 * h) for e in np.eye(len(a))])
    diff = num - sinkhorn(a, b, M, reg, tol=1e-14).grad
    np.testing.assert_allclose(diff, np.full_like(diff, diff.mean()), atol=1e-7)
    assert abs(sinkhorn(a, b, M, reg).grad.sum()) < 1e-12


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_batch_equals_per_pair(method):
    a, b, M = problem(9, 7, N=5, seed=7)
    res = sinkhorn(a, b, M, 0.05, method=method)
    assert res.cost.shape == (5,) and res.f.shape == (5, 9) and res.g.shape == (5, 7)
    assert res.plan.shape == (5, 9, 7)
    for i in range(5):
        r = sinkhorn(a[i], b[i], M, 0.05, method=method)
        np.testing.assert_allclose(res.cost[i], r.cost, rtol=1e-9)
        np.testing.assert_allclose(res.reg_cost[i], r.reg_cost, rtol=1e-9)
        np.testing.assert_allclose(res.grad[i], r.grad, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(res.plan[i], r.plan, rtol=1e-7, atol=1e-12)
    # fixed-iteration mode: the same iterates, exactly
    fx = sinkhorn(a, b, M, 0.05, n_iter=20, tol=None, method=method)
    for i in range(5):
        r = sinkhorn(a[i], b[i], M, 0.05, n_iter=20, tol=None, method=method)
        np.testing.assert_allclose(fx.cost[i], r.cost, rtol=1e-12)
        np.testing.assert_allclose(fx.grad[i], r.grad, rtol=1e-10, atol=1e-14)


def test_one_a_against_many_b_and_nd_batch():
    a, b, M = problem(6, N=6, seed=8)
    res = sinkhorn(a[0], b, M, 0.1)
    assert res.cost.shape == (6,)
    for i in range(6):
        np.testing.assert_allclose(res.cost[i], sinkhorn(a[0], b[i], M, 0.1).cost, rtol=1e-9)
    r2 = sinkhorn(a.reshape(2, 3, 6), b.reshape(2, 3, 6), M, 0.1)
    assert r2.cost.shape == (2, 3) and r2.grad.shape == (2, 3, 6)
    assert r2.marginal_error.shape == (2, 3)
    np.testing.assert_allclose(r2.cost.reshape(-1), sinkhorn(a, b, M, 0.1).cost, rtol=1e-12)
    # unbatched results are 0-d arrays
    r0 = sinkhorn(a[0], b[0], M, 0.1)
    assert r0.cost.shape == () and r0.marginal_error.shape == ()


def test_heterogeneous_batch_small_reg_equals_single_pairs():
    # at reg = 1e-3 the pairs' potentials are too different for one shared kernel;
    # the log method (exact log-sum-exp where the shared kernel cannot represent a pair) matches per-pair runs
    a, b, M = problem(8, N=3, seed=9)
    kw = dict(method="log", tol=1e-9, n_iter=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sinkhorn(a, b, M, 3e-4, **kw)
        singles = [sinkhorn(a[i], b[i], M, 3e-4, **kw) for i in range(3)]
    for i, r in enumerate(singles):
        np.testing.assert_allclose(res.cost[i], r.cost, rtol=1e-7)
        np.testing.assert_allclose(res.grad[i], r.grad, rtol=1e-6, atol=1e-9)


def _log_reference(a, b, M, reg, n_iter):
    """Algorithm 1 in the log domain with scipy's logsumexp, one pair at a time (zero-mass bins
    masked, their potentials the c-transforms): an independent per-pair reference."""
    from scipy.special import logsumexp

    costs = []
    for ai, bi in zip(a, b):
        la = np.where(ai > 0, reg * np.log(np.where(ai > 0, ai, 1)), 0)
        lb = np.where(bi > 0, reg * np.log(np.where(bi > 0, bi, 1)), 0)
        f = np.full(ai.shape, -reg * np.log(ai.size))
        for it in range(n_iter + 1):
            fm = np.where(ai > 0, f, -np.inf)
            g = lb - reg * logsumexp((fm[:, None] - M) / reg, axis=0)
            if it == n_iter:
                break
            f = la - reg * logsumexp((np.where(bi > 0, g, -np.inf)[None, :] - M) / reg, axis=1)
        P = np.exp((fm[:, None] + np.where(bi > 0, g, -np.inf)[None, :] - M) / reg)
        costs.append((P * M).sum())
    return np.array(costs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_hot_training_batch_large_ratio_takes_per_pair_kernels(dtype):
    # one-hot targets at (max M - min M)/reg = 630: one shared absorbed kernel cannot represent the
    # batch; the kernel switches to per-pair absorbed kernels (batched products) instead of
    # recomputing every pair exactly at every step, and the values equal the per-pair reference
    from otcore._sinkhorn import _finalize, _problem, _solve

    rng = np.random.default_rng(3)
    N, n, n_iter = 256, 64, 20
    a = rng.dirichlet(np.ones(n), N)
    a[:4, :5] = 0.0  # empty bins in some predictions
    a /= a.sum(1, keepdims=True)
    b = np.eye(n)[rng.integers(0, n, N)]
    i = np.arange(n, dtype=np.float64)
    M = np.abs(i[:, None] - i[None, :])
    reg = float(M.max()) / 630
    prob = _problem(a.astype(dtype), b.astype(dtype), M.astype(dtype), reg, n_iter, None, "log", "auto",
                    None, True)
    with np.errstate(all="ignore"):
        res = _finalize(prob, *_solve(prob))
    calls = prob.kernel.calls
    assert calls["per_pair"] > 0
    # the exact fallback covers at most a few steps' worth of pairs, not 2 * n_iter steps' worth
    assert calls["exact_pairs"] < 4 * N, calls
    ref = _log_reference(a, b, M, reg, n_iter)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(np.asarray(res.cost, dtype=np.float64), ref, rtol=rtol)
    assert np.all(np.isfinite(res.f)) and np.all(np.isfinite(res.g))


def test_shared_kernel_heterogeneous_batch_equals_reference():
    # pairs whose potentials differ by far more than the shared kernel's range: rows whose sum would
    # miss flushed terms are recomputed exactly (this gave a 28% error before)
    from otcore._sinkhorn import _finalize, _problem, _solve
    import otcore._kernels as K

    rng = np.random.default_rng(4)
    N, n = 64, 32
    a = rng.dirichlet(np.ones(n), N)
    b = np.eye(n)[rng.integers(0, n, N)]
    i = np.arange(n, dtype=np.float64)
    M = np.abs(i[:, None] - i[None, :])
    reg = float(M.max()) / 630
    prob = _problem(a, b, M, reg, 3, None, "log", "auto", None, True)
    old = K._PAIR_SWITCH
    K._PAIR_SWITCH = math.inf  # keep the shared kernel (the path under test)
    try:
        with np.errstate(all="ignore"):
            res = _finalize(prob, *_solve(prob))
    finally:
        K._PAIR_SWITCH = old
    assert prob.kernel.calls["per_pair"] == 0
    np.testing.assert_allclose(res.cost, _log_reference(a, b, M, reg, 3), rtol=1e-10)


def test_plan_marginals():
    a, b, M = problem(10, 8, N=4, seed=10)
    for tol in (1e-6, 1e-10):
        res = sinkhorn(a, b, M, 0.05, tol=tol)
        P = res.plan
        assert res.converged
        np.testing.assert_allclose(P.sum(-2), b, atol=1e-12)  # last update: v, exact
        rel = np.abs(P.sum(-1) - a).sum(-1) / a.sum(-1)
        assert np.all(rel <= tol)
        np.testing.assert_allclose(rel, res.marginal_error, rtol=1e-6, atol=1e-15)
        np.testing.assert_allclose(res.cost, (P * M).sum((-2, -1)), rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 7),
    m=st.integers(1, 7),
    reg=st.floats(0.02, 5.0),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["scaling", "log"]),
)
def test_property_marginals_and_bounds(n, m, reg, seed, method):
    a, b, M = problem(n, m, N=2, seed=seed)
    res = sinkhorn(a, b, M, reg, method=method, tol=1e-9, n_iter=20000)
    assert res.converged
    P = res.plan
    np.testing.assert_allclose(P.sum(-2), b, atol=1e-12)
    assert np.all(np.abs(P.sum(-1) - a).sum(-1) <= 1e-9 + 1e-15)
    # <P, M> lies between the exact EMD and the cost of the independent plan
    for i in range(2):
        lo = ot.emd2(a[i], b[i], M)
        hi = a[i] @ M @ b[i]
        assert lo - 1e-9 <= res.cost[i] <= hi + 1e-9
    np.testing.assert_allclose(res.grad.sum(-1), 0.0, atol=1e-12)


# --------------------------------------------------------------------------- numerics


def test_zero_mass_bins():
    a, b, M = problem(8, 7, seed=11)
    a[[1, 4]] = 0.0
    b[2] = 0.0
    a /= a.sum()
    b /= b.sum()
    for method in ("scaling", "log"):
        res = sinkhorn(a, b, M, 0.05, method=method)
        for x in (res.f, res.g, res.grad, res.cost, res.reg_cost, res.plan):
            assert np.all(np.isfinite(x))
        assert np.all(res.plan[[1, 4], :] == 0) and np.all(res.plan[:, 2] == 0)
        # Cuturi drops zero bins: same as POT on the reduced problem
        ia, ib = a > 0, b > 0
        P = ot.sinkhorn(a[ia], b[ib], M[np.ix_(ia, ib)], 0.05, stopThr=1e-14, numItermax=10000)
        np.testing.assert_allclose(res.plan[np.ix_(ia, ib)], P, rtol=1e-6, atol=1e-10)
        # the zero-bin potential is the c-transform of g
        ct = -0.05 * np.log(np.exp((res.g[ib] - M[np.ix_([1], ib)]) / 0.05).sum())
        np.testing.assert_allclose(res.f[1], ct, rtol=1e-10)
    # fixed-iteration mode with one-hot targets (the training use in Dhariwal & Inala)
    y = np.zeros(8)
    y[3] = 1.0
    p = random_histograms(np.random.default_rng(0), (8,))
    line = np.abs(np.subtract.outer(np.arange(8), np.arange(8))) / 7.0
    r = sinkhorn(p, y, line, 0.1, n_iter=50, tol=None)
    assert np.all(np.isfinite(r.grad)) and np.all(np.isfinite(r.g))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("reg", [1e-4, 1e-2, 1.0, 1e2])
def test_no_nan_or_inf_over_ranges(scale, reg):
    a, b, M = problem(6, N=2, seed=12, zeros=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sinkhorn(a, b, M * scale, reg, n_iter=300)
        fixed = sinkhorn(a, b, M * scale, reg, n_iter=30, tol=None)
    for r in (res, fixed):
        for x in (r.cost, r.reg_cost, r.f, r.g, r.grad, r.marginal_error, r.plan):
            assert np.all(np.isfinite(x)), (r.method, x)


def test_auto_method_choice():
    a, b, M = problem(6, seed=13)
    assert sinkhorn(a, b, M, 0.1).method == "scaling"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert sinkhorn(a, b, M, 1e-3, n_iter=10).method == "log"
        assert sinkhorn(a, b, M, 1e-3, eps_scaling=3, n_iter=10).method == "log"
    # scaling that underflows falls back to the log method with a warning
    with pytest.warns(RuntimeWarning, match="switched to method='log'"):
        r = sinkhorn(a, b, M * 1e3, 1e-1, method="scaling", n_iter=20, tol=None)
    assert r.method == "log" and np.all(np.isfinite(r.grad))


def test_float32():
    a, b, M = problem(10, N=3, seed=14)
    a32, b32, M32 = (x.astype(np.float32) for x in (a, b, M))
    for method in ("scaling", "log"):
        res = sinkhorn(a32, b32, M32, 0.05, method=method, tol=1e-5)
        ref = sinkhorn(a, b, M, 0.05, method=method, tol=1e-5)
        assert res.cost.dtype == np.float32 and res.grad.dtype == np.float32
        assert res.converged
        np.testing.assert_allclose(res.cost, ref.cost, rtol=1e-4)
        np.testing.assert_allclose(res.grad, ref.grad, atol=1e-4)
    # range / reg between 25 and 200: the scaling iterates run in float64 (returned in float32)
    r = sinkhorn(a32, b32, M32 * 100, 1.0, n_iter=200, tol=None)
    assert r.method == "scaling" and r.cost.dtype == np.float32
    ref = sinkhorn(a32, b32, M32 * 100, 1.0, n_iter=200, tol=None, method="log")
    np.testing.assert_allclose(r.cost, ref.cost, rtol=1e-4)
    # range / reg = 1000: the log method; no NaN/inf in float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = sinkhorn(a32, b32, M32 * 1000, 1.0, n_iter=200)
    assert r.method == "log"
    for x in (r.cost, r.reg_cost, r.f, r.g, r.grad, r.plan):
        assert x.dtype == np.float32 and np.all(np.isfinite(x))


# --------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_namespaces(xp, method):
    a, b, M = problem(7, 5, N=3, seed=15)
    a[0, 2] = 0.0
    a[0] /= a[0].sum()
    ref = sinkhorn(a, b, M, 0.1, method=method)
    res = sinkhorn(asxp(xp, a), asxp(xp, b), asxp(xp, M), 0.1, method=method)
    for name in ("cost", "reg_cost", "f", "g", "grad", "marginal_error"):
        xp_assert_close(getattr(res, name), getattr(ref, name), xp=xp, rtol=1e-9, atol=1e-13)
    xp_assert_close(res.plan, ref.plan, xp=xp, rtol=1e-9, atol=1e-14)
    assert res.converged is True and res.n_iter == ref.n_iter
    fx = sinkhorn(asxp(xp, a), asxp(xp, b), asxp(xp, M), 0.1, n_iter=15, tol=None, method=method)
    assert_namespace(fx.grad, xp)
    xp_assert_close(fx.grad, sinkhorn(a, b, M, 0.1, n_iter=15, tol=None, method=method).grad,
                    rtol=1e-10, atol=1e-14)


def test_torch_tensors_stay_torch():
    torch = pytest.importorskip("torch")
    a, b, M = problem(6, N=2, seed=16)
    at = torch.tensor(a, requires_grad=True)
    res = sinkhorn(at.detach(), torch.tensor(b), torch.tensor(M), 0.1, n_iter=20, tol=None)
    assert isinstance(res.cost, torch.Tensor) and isinstance(res.grad, torch.Tensor)
    assert res.grad.dtype == torch.float64


def test_jax_jit_fixed_iterations():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    a, b, M = problem(6, N=3, seed=17)
    a32, b32, M32 = (x.astype(np.float32) for x in (a, b, M))

    for method in ("auto", "scaling", "log"):

        @jax.jit
        def run(a, b, M):
            r = sinkhorn(a, b, M, 0.1, n_iter=25, tol=None, method=method)
            return r.cost, r.grad, r.converged, r.marginal_error

        cost, grad, conv, err = run(jnp.asarray(a32), jnp.asarray(b32), jnp.asarray(M32))
        ref = sinkhorn(a32, b32, M32, 0.1, n_iter=25, tol=None, method=method)
        np.testing.assert_allclose(np.asarray(cost), ref.cost, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(grad), ref.grad, atol=1e-5)
        np.testing.assert_allclose(np.asarray(err), ref.marginal_error, rtol=1e-2, atol=1e-6)
        assert np.asarray(conv).shape == ()
    with pytest.raises(ValueError, match="tol=None"):
        jax.jit(lambda a, b, M: sinkhorn(a, b, M, 0.1).cost)(
            jnp.asarray(a32), jnp.asarray(b32), jnp.asarray(M32)
        )


# --------------------------------------------------------------------------- warnings, API


def test_convergence_warning():
    a, b, M = problem(10, seed=18)
    with pytest.warns(ConvergenceWarning, match="n_iter"):
        res = sinkhorn(a, b, M, 0.01, n_iter=20)
    assert res.converged is False and res.n_iter == 20
    assert issubclass(ConvergenceWarning, RuntimeWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn(a, b, M, 0.01, n_iter=20, warn=False)
        r = sinkhorn(a, b, M, 0.01, n_iter=20, tol=None)  # fixed budget: never warns
    assert r.converged is False


def test_result_record():
    a, b, M = problem(5, seed=19)
    res = sinkhorn(a, b, M, 0.1)
    assert isinstance(res, SinkhornResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.cost = 0
    assert "_M" not in repr(res)
    assert set(SINKHORN_METHODS) == {"auto", "scaling", "log"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(reg=0.0), "reg"),
        (dict(reg=-1.0), "reg"),
        (dict(reg=float("nan")), "reg"),
        (dict(reg=float("inf")), "reg"),
        (dict(n_iter=0), "n_iter"),
        (dict(tol=-1e-3), "tol"),
        (dict(method="fast"), "method"),
        (dict(tol=None), "n_iter"),
        (dict(tol=None, n_iter=5, eps_scaling=True), "eps_scaling"),
        (dict(tol="fast"), "tol"),
        (dict(eps_scaling=0), "eps_scaling"),
    ],
)
def test_bad_input(kwargs, match):
    a, b, M = problem(4, seed=20)
    kw = dict(reg=0.1)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sinkhorn(a, b, M, **kw)


def test_bad_histograms():
    a, b, M = problem(4, seed=21)
    with pytest.raises(ValueError, match="same total mass"):
        sinkhorn(a, 2 * b, M, 0.1)
    with pytest.raises(ValueError, match="M"):
        sinkhorn(a, b, M[:3], 0.1)
    with pytest.raises(ValueError, match="negative"):
        sinkhorn(-a, b, M, 0.1)
    with pytest.raises(TypeError, match="n_iter"):
        sinkhorn(a, b, M, 0.1, n_iter=2.5)
    with pytest.raises(TypeError, match="eps_scaling"):
        sinkhorn(a, b, M, 0.1, eps_scaling=0.5)
    with pytest.raises(ValueError, match="batch"):
        sinkhorn(np.tile(a, (2, 1)), np.tile(b, (3, 1)), M, 0.1)


# --------------------------------------------------------------------------- engine: honesty, NaN, dtypes


def log_reference(a, b, M, reg, n_iter=200_000, tol=1e-13):
    """A plain log-domain Sinkhorn in float64 on the support (zero bins dropped): (cost, plan)."""
    a, b, M = (np.asarray(x, dtype=np.float64) for x in (a, b, M))
    ia, ib = a > 0, b > 0
    a1, b1, C = a[ia] / a.sum(), b[ib] / b.sum(), M[np.ix_(ia, ib)]
    f = np.zeros(len(a1))
    for _ in range(n_iter):
        g = reg * np.log(b1) - reg * _lse((f[:, None] - C) / reg, 0)
        fn = reg * np.log(a1) - reg * _lse((g[None, :] - C) / reg, 1)
        done = np.abs(fn - f).max() / reg < tol
        f = fn
        if done:
            break
    g = reg * np.log(b1) - reg * _lse((f[:, None] - C) / reg, 0)
    P = np.zeros(M.shape)
    P[np.ix_(ia, ib)] = np.exp((f[:, None] + g[None, :] - C) / reg) * a.sum()
    return float((P * M).sum()), P


def _lse(Z, axis):
    mx = Z.max(axis=axis, keepdims=True)
    return (mx + np.log(np.exp(Z - mx).sum(axis=axis, keepdims=True))).squeeze(axis)


def plan_error(res, a):
    """Relative L1 row-marginal error of ``res.plan``, measured in float64."""
    P = np.asarray(res.plan, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    return np.abs(P.sum(-1) - a).sum(-1) / a.sum(-1)


def test_both_sides_empty_bins_small_reg_no_nan():
    M = [[43.0, 19.0], [19.0, 19.0]]
    for kw in ({}, dict(n_iter=10, tol=None)):
        for method in ("auto", "log", "scaling"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = sinkhorn([1.0, 0.0], [0.0, 1.0], M, 0.01, method=method, **kw)
            assert float(r.cost) == pytest.approx(19.0, rel=1e-12), (method, kw)
            for x in (r.f, r.g, r.grad, r.reg_cost, r.plan):
                assert np.all(np.isfinite(x))
            assert r.converged
    # one such pair does not poison a batch: the other pairs equal their single runs
    a = np.array([[1.0, 0.0], [0.5, 0.5], [0.3, 0.7]])
    b = np.array([[0.0, 1.0], [0.5, 0.5], [0.6, 0.4]])
    M2 = np.array([[0.0, 1.0], [1.0, 0.0]]) * 43
    for kw in ({}, dict(n_iter=30, tol=None)):
        res = sinkhorn(a, b, M2, 0.01, **kw)
        assert np.all(np.isfinite(res.cost)) and np.all(np.isfinite(res.grad))
        for i in range(3):
            r = sinkhorn(a[i], b[i], M2, 0.01, **kw)
            np.testing.assert_allclose(res.cost[i], r.cost, rtol=1e-9, atol=1e-12)


def test_scaling_with_underflowing_kernel_is_honest():
    # exp(-M/reg) underflows for part of M: the u, v iterates then describe
    # another plan; converged/marginal_error must describe res.plan
    a, b, M = problem(10, N=3, seed=31, zeros=2)
    for reg in (M.max() / 600, M.max() / 750, M.max() / 2000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sinkhorn(a, b, M, reg, method="scaling", n_iter=3000)
        got = plan_error(res, a)
        np.testing.assert_allclose(res.marginal_error, got, rtol=1e-6, atol=1e-13)
        if res.converged:
            assert np.all(got <= 1e-9 * (1 + 1e-6))
        np.testing.assert_allclose(res.cost, (res.plan * M).sum((-2, -1)), rtol=1e-10, atol=1e-300)


def test_float16_runs_in_float32_and_returns_float16():
    a, b, M = problem(8, N=4, seed=32, zeros=1)
    for method in ("scaling", "log"):
        r16 = sinkhorn(a.astype(np.float16), b.astype(np.float16), M.astype(np.float16), 0.1, method=method)
        r32 = sinkhorn(a.astype(np.float32), b.astype(np.float32), M.astype(np.float32), 0.1,
                       method=method, tol=1e-3)
        assert r16.cost.dtype == np.float16 and r16.grad.dtype == np.float16 and r16.plan.dtype == np.float16
        assert r16.converged
        np.testing.assert_allclose(r16.cost.astype(np.float32), r32.cost, rtol=2e-3)
        assert abs(float(r16.plan.astype(np.float64).sum()) - 4.0) < 2e-2


def test_default_tol_follows_dtype():
    a, b, M = problem(30, N=3, seed=33)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r32 = sinkhorn(a.astype(np.float32), b.astype(np.float32), M.astype(np.float32), 0.05)
        r64 = sinkhorn(a, b, M, 0.05)
    assert r32.converged and r64.converged
    assert np.all(plan_error(r32, a.astype(np.float32)) <= 1e-5 * 1.01 + 1e-7)
    assert np.all(plan_error(r64, a) <= 1e-9 * 1.01)
    # a mass difference the check accepts is within reach of the tolerance
    b2 = b * (1 + 5e-7)
    r = sinkhorn(a, b2, M, 0.05)
    assert r.converged and np.all(r.marginal_error <= 1e-9)


def test_active_set_mixed_batch_equals_single_pairs():
    rng = np.random.default_rng(34)
    n = 12
    M = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float)
    a = rng.random((6, n)) ** 4
    b = rng.random((6, n)) ** 4
    a[0] = b[0] = np.full(n, 1.0 / n)  # converges at once
    a[1, :6] = 0.0  # hard: disjoint-ish supports
    b[1, 6:] = 0.0
    a /= a.sum(-1, keepdims=True)
    b /= b.sum(-1, keepdims=True)
    res = sinkhorn(a, b, M, 0.3)
    assert res.converged and np.all(res.marginal_error <= 1e-9)
    np.testing.assert_allclose(plan_error(res, a), res.marginal_error, rtol=1e-5, atol=1e-14)
    for i in range(6):
        r = sinkhorn(a[i], b[i], M, 0.3)
        np.testing.assert_allclose(res.cost[i], r.cost, rtol=1e-8)


def test_warm_start():
    a, b, M = problem(20, N=2, seed=35)
    r = sinkhorn(a, b, M, 0.02)
    w = sinkhorn(a, b, M, 0.02, init=(r.f, r.g))
    assert w.converged and w.n_iter <= 10 < r.n_iter
    np.testing.assert_allclose(w.cost, r.cost, rtol=1e-8)
    for method in ("scaling", "log"):
        wg = sinkhorn(a, b, M, 0.02, init=(None, r.g), method=method)
        assert wg.converged and wg.n_iter <= 10
    with pytest.raises(TypeError, match="init"):
        sinkhorn(a, b, M, 0.02, init=r.f)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    log_ratio=st.floats(0.0, 5.0),
    dtype=st.sampled_from([np.float64, np.float32, np.float16]),
    fixed=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_sparse_histograms_any_ratio(n, m, log_ratio, dtype, fixed, seed):
    """Zeros on both sides, range/reg from 1 to 1e5, batches mixing easy and hard pairs."""
    rng = np.random.default_rng(seed)
    N = 3
    a = rng.random((N, n)) * (rng.random((N, n)) > 0.4)
    b = rng.random((N, m)) * (rng.random((N, m)) > 0.4)
    a[:, rng.integers(n)] += 0.2
    b[:, rng.integers(m)] += 0.2
    a[0] = 1.0 / n  # an easy pair next to the sparse ones
    b[0] = 1.0 / m
    a /= a.sum(-1, keepdims=True)
    b /= b.sum(-1, keepdims=True)
    M = rng.random((n, m)) * 10 ** rng.uniform(-3, 3)
    rng_M = max(float(M.max() - M.min()), 1e-3)
    reg = rng_M / 10**log_ratio
    a_, b_, M_ = (x.astype(dtype) for x in (a, b, M))
    a_ = a_ / a_.sum(-1, keepdims=True)
    b_ = b_ / b_.sum(-1, keepdims=True)
    kw = dict(n_iter=40, tol=None) if fixed else dict(n_iter=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sinkhorn(a_, b_, M_, reg, **kw)
    for x in (res.cost, res.reg_cost, res.f, res.g, res.grad, res.marginal_error, res.plan):
        assert np.all(np.isfinite(np.asarray(x, dtype=np.float64))), res
        assert x.dtype == dtype
    tol = {np.float64: 1e-9, np.float32: 1e-5, np.float16: 1e-3}[dtype]
    got = plan_error(res, np.asarray(a_, dtype=np.float64))
    # exp((f + g - M) / reg) is exact to the rounding of its argument: |f| / reg
    # units of eps of the compute dtype (float32 for float16: the plan is built
    # from the float32 potentials, then rounded)
    ceps = np.finfo(np.float64 if dtype == np.float64 else np.float32).eps
    pot = float(np.abs(np.asarray(res.f, dtype=np.float64)).max() + np.abs(np.asarray(res.g, dtype=np.float64)).max())
    slack = 16 * ceps * (max(n, m) + (pot + float(M.max())) / reg)
    if dtype == np.float16:
        slack += 4 * max(n, m) * float(np.finfo(np.float16).eps)  # plan rounded to float16
    if res.converged:
        # the plan of the result meets the tolerance (up to rounding)
        assert np.all(got <= tol + slack), (got, res.marginal_error, slack)
    if dtype == np.float64:
        np.testing.assert_allclose(res.marginal_error, got, rtol=1e-4, atol=1e-12 + slack)
        # <P, M> lies between the exact EMD and EMD + reg log(nm) + the marginal slack
        for i in range(N):
            lo = ot.emd2(a[i], b[i], M)
            hi = lo + reg * math.log(n * m) + float(res.marginal_error[i]) * float(M.max())
            assert lo - 1e-9 * (1 + lo) - float(res.marginal_error[i]) * M.max() <= res.cost[i] <= hi + 1e-9 * (1 + hi)
        if res.converged and not fixed and log_ratio <= 2:
            for i in range(N):
                ref_cost, _ = log_reference(a[i], b[i], M, reg)
                assert abs(float(res.cost[i]) - ref_cost) <= 1e-6 * (1 + abs(ref_cost))


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_jit_program_size_does_not_grow_with_n_iter(method):
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    a, b, M = problem(6, N=3, seed=36)
    args = tuple(jnp.asarray(x.astype(np.float32)) for x in (a, b, M))

    def size(n_iter):
        fn = lambda a, b, M: sinkhorn(a, b, M, 0.1, n_iter=n_iter, tol=None, method=method).cost
        text = str(jax.make_jaxpr(fn)(*args))
        assert "scan[" in text or "while[" in text  # one traced loop
        return len(text.splitlines())  # equations (the loop length is a literal)

    assert size(10) == size(1000)


@pytest.mark.parametrize("method", ["scaling", "log"])
def test_fixed_iterations_stop_at_a_rounding_fixed_point(method, monkeypatch):
    # one-hot targets: Algorithm 1 reaches its fixed point (to rounding) within a few iterations;
    # the driver stops there and the result equals all n_iter iterations of a plain loop
    # (the general engine's driver; the compiled one: tests/test_csinkhorn.py)
    import otcore._sinkhorn as S

    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))

    rng = np.random.default_rng(5)
    N, n, n_iter, reg = 100, 4, 50, 0.1
    a = rng.dirichlet(np.ones(n), N)
    b = np.eye(n)[rng.integers(0, n, N)]
    i = np.arange(n, dtype=np.float64)
    M = np.abs(i[:, None] - i[None, :])
    K = np.exp(-M / reg)
    u = np.full((N, n), 1.0 / n)
    for _ in range(n_iter):
        u = a / ((b / (u @ K)) @ K.T)
    v = b / (u @ K)
    ref = np.einsum("pi,ij,pj,ij->p", u, K, v, M)
    calls = []
    first = S._ScalingSteps.first if method == "scaling" else S._LogSteps.first

    def counting(self, state):
        calls.append(1)
        return first(self, state)

    monkeypatch.setattr(S._ScalingSteps if method == "scaling" else S._LogSteps, "first", counting)
    res = sinkhorn(a, b, M, reg, n_iter=n_iter, tol=None, method=method)
    assert len(calls) < n_iter // 2 and res.n_iter == len(calls) - 1  # n_iter: iterations done
    np.testing.assert_allclose(res.cost, ref, rtol=1e-12)
    # a problem far from its fixed point runs every iteration
    calls.clear()
    sinkhorn(a, rng.dirichlet(np.ones(n), N), M, 0.01, n_iter=n_iter, tol=None, method=method)
    assert len(calls) == n_iter + 1
