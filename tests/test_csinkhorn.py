"""Tests of the compiled fixed-iteration Sinkhorn driver (otcore/_csinkhorn.c).

``otcore.sinkhorn`` with ``tol=None`` on small dense numpy batches runs in one C call
(``otcore._sinkhorn._host_solve``). Here: its results against the general engine on ugly
inputs (zero and tiny masses, costs from 1e-12 to 1e12, every form: scaling, shared-kernel
log, exact log), against Algorithm 1 written as a plain log-domain loop and against POT;
that the inputs it refuses reach the general engine's errors; that everything it does not
take is routed there unchanged; the bindings' checks (nothing malformed reaches the C code);
calls from several threads; and the loss core that reads its packed results.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

import otcore
import otcore._sinkhorn as S
from otcore import _csinkhorn
from otcore._losses import sinkhorn_loss_grads

# agreement with the general engine, relative to max|M| + reg (times the mass for costs)
_TOL = {np.float64: 1e-9, np.float32: 1e-5}


def _general(a, b, M, reg, n_iter, method):
    """The general engine on the same problem (never the compiled driver)."""
    p = S._problem(a, b, M, reg, n_iter, None, method, "auto", None, True)
    with np.errstate(all="ignore"):
        return S._finalize(p, *S._solve(p))


def _masses(rng, shape, tiny, total, zeros=0.3):
    x = rng.random(shape)
    x[rng.random(shape) < zeros] = 0.0
    x[rng.random(shape) < 0.2] = tiny
    x[..., rng.integers(shape[-1])] += 0.5  # every histogram has mass
    return x / x.sum(-1, keepdims=True) * total


def _algorithm1(a, b, M, reg, n_iter):
    """Algorithm 1 (u = 1/n on every bin; n_iter v, u updates; a last v update) in the log
    domain, float64. Returns the cost <P, M> and row error of its plan for the original
    masses, and its potentials f (shifted by reg log sum(a)), g, with the c-transforms on
    zero-mass bins."""
    a, b, M = (np.asarray(x, np.float64) for x in (a, b, M))
    with np.errstate(divide="ignore"):
        la, lb = np.log(a / a.sum()), np.log(b / b.sum())
    softmin = lambda h, axis: -reg * logsumexp((h - M) / reg, axis=axis)  # noqa: E731
    f = np.full(M.shape[0], -reg * np.log(M.shape[0]))
    for _ in range(n_iter):
        g = reg * lb + softmin(f[:, None], 0)
        f = reg * la + softmin(g[None, :], 1)
    g = reg * lb + softmin(f[:, None], 0)
    P = np.exp((f[:, None] + g[None, :] - M) / reg)  # zero-mass rows and columns: exactly 0
    g = np.where(b > 0, g, softmin(f[:, None], 0))
    f = np.where(a > 0, f, softmin(np.where(b > 0, g, -np.inf)[None, :], 1)) + reg * np.log(a.sum())
    return a.sum() * (P * M).sum(), np.abs(P.sum(1) - np.exp(la)).sum(), f, g


# --------------------------------------------------------------------------- the general engine


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 7),
    m=st.integers(1, 7),
    layout=st.sampled_from(["11", "12", "21", "22"]),  # a, b: (n,) or (N, n)
    N=st.sampled_from([1, 3]),
    dtype=st.sampled_from([np.float64, np.float32]),
    tiny=st.sampled_from([1e-300, 1e-38, 1e-9]),
    total=st.sampled_from([1.0, 3.7, 1e-5]),
    scale=st.integers(-12, 12),
    ties=st.booleans(),
    ratio=st.sampled_from([0.5, 10.0, 150.0, 300.0, 900.0, 5000.0]),
    n_iter=st.sampled_from([1, 2, 3, 9, 50, 300]),
    method=st.sampled_from(["auto", "log"]),
)
def test_driver_equals_the_general_engine(seed, n, m, layout, N, dtype, tiny, total, scale, ties, ratio,
                                          n_iter, method):
    rng = np.random.default_rng(seed)
    a = _masses(rng, (n,) if layout[0] == "1" else (N, n), tiny, total).astype(dtype)
    b = _masses(rng, (m,) if layout[1] == "1" else (N, m), tiny, total).astype(dtype)
    M = (rng.integers(0, 4, (n, m)) if ties else rng.random((n, m))) * 10.0**scale
    span = float(M.max() - M.min())
    reg = span / ratio if span > 0 else 10.0**scale  # a Python float: the driver's type
    M = M.astype(dtype)
    run = S._host_solve(a, b, M, reg, n_iter, method)
    assert run is not None  # the compiled driver takes it
    res = otcore.sinkhorn(a, b, M, reg, n_iter=n_iter, tol=None, method=method)
    # the driver computes in float64 whatever the input: the reference is the general
    # engine on float64 copies (its float32 arithmetic is less accurate than the driver's)
    wide = tuple(x.astype(np.float64) for x in (a, b, M))
    ref = _general(*wide, reg, n_iter, method)
    if res.method == "log" and ref.method == "scaling":
        # the driver redid a pair in the log form: scalings beyond [2^-250, 2^250], where the
        # general engine's scaling iterates lose digits to subnormal products
        ref = _general(*wide, reg, n_iter, "log")
    assert res.method == ref.method
    same = _general(a, b, M, reg, n_iter, method)  # dtypes and shapes of the caller's dtype
    for k in ("cost", "reg_cost", "f", "g", "grad", "marginal_error", "plan"):
        with np.errstate(all="ignore"):
            x, y = getattr(res, k), getattr(same, k)
        assert x.dtype == y.dtype == dtype and x.shape == y.shape, k
        assert np.all(np.isfinite(x)), k
    assert 1 <= res.n_iter <= n_iter
    assert res.converged == bool(np.all(run.wide[..., 2 * n + m + 2] <= run.tol))

    eps = float(np.finfo(dtype).eps)
    unit = float(np.abs(wide[2]).max()) + reg
    mass = float(wide[0].sum(-1).max())
    tol = _TOL[dtype] * unit

    def close(x, y, atol, what):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        bound = atol + 4 * eps * np.abs(y)  # plus the rounding of the outputs to the dtype
        assert np.all(np.abs(x - y) <= bound), (what, np.max(np.abs(x - y) - bound))

    want = np.asarray(ref.cost, np.float64)
    if not np.all(np.isfinite(want)):  # (guards the comparison should the general engine overflow)
        A = np.broadcast_to(a, want.shape + (n,)).reshape(-1, n)
        B = np.broadcast_to(b, want.shape + (m,)).reshape(-1, m)
        want = np.reshape([_algorithm1(x, y, wide[2], reg, n_iter)[0] for x, y in zip(A, B)], want.shape)
    close(res.cost, want, tol * mass, "cost")
    close(res.reg_cost, ref.reg_cost, tol * mass, "reg_cost")
    close(res.grad, ref.grad, tol, "grad")
    fbar = np.asarray(ref.f, np.float64).mean(-1, keepdims=True)
    close(res.g + np.asarray(res.f, np.float64).mean(-1, keepdims=True), ref.g + fbar,
          tol + 4 * eps * np.abs(fbar), "g + mean(f)")
    close(res.marginal_error, ref.marginal_error, _TOL[dtype], "marginal_error")
    # the plan's exponent (f + g - M) / reg is rounded to the dtype
    cond = (np.abs(ref.f).max() + np.abs(ref.g).max() + unit) / reg
    close(res.plan, ref.plan, mass * (_TOL[dtype] + 8 * eps * cond), "plan")


# --------------------------------------------------------------------------- Algorithm 1, POT


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    tiny=st.sampled_from([1e-306, 1e-300, 1e-200, 1e-9]),
    ties=st.booleans(),
    ratio=st.sampled_from([0.5, 10.0, 150.0, 300.0, 900.0, 5000.0]),
    n_iter=st.sampled_from([1, 2, 5, 40, 200]),
    method=st.sampled_from(["auto", "log"]),
)
def test_against_algorithm1_as_a_plain_loop(seed, n, m, tiny, ties, ratio, n_iter, method):
    rng = np.random.default_rng(seed)
    a = _masses(rng, (3, n), tiny, 2.5)
    b = _masses(rng, (3, m), tiny, 2.5)
    M = (rng.integers(0, 4, (n, m)) * 7.0 / 3 if ties else rng.random((n, m)) * 7.0)
    span = float(M.max() - M.min())
    reg = span / ratio if span > 0 else 1.0
    res = otcore.sinkhorn(a, b, M, reg, n_iter=n_iter, tol=None, method=method)
    assert S._host_solve(a, b, M, reg, n_iter, method) is not None
    unit = 7.0 + reg
    for p in range(3):
        cost, err, f, g = _algorithm1(a[p], b[p], M, reg, n_iter)
        assert res.cost[p] == pytest.approx(cost, rel=0, abs=1e-11 * 2.5 * unit)
        assert res.marginal_error[p] == pytest.approx(err, rel=0, abs=1e-11)
        # potentials up to a constant, within the rounding of their size
        atol = 1e-11 * unit + 1e-14 * np.abs(f).max()
        np.testing.assert_allclose(res.grad[p], f - f.mean(), rtol=0, atol=atol)
        np.testing.assert_allclose(res.g[p] + res.f[p].mean(), g + f.mean(), rtol=0, atol=atol)


def test_pairs_whose_scalings_leave_the_range_are_redone_in_the_log_form():
    # pair 1: bins of mass ~1e-300 drive its scalings below 2^-250 (the scaling iterates of
    # the general engine lose digits to subnormal products there); pair 0 stays in range
    a = np.array([0.41729312, 0.58270688])
    b = np.array([[1 / 7] * 7, [0, 5.8e-301, 0.151446782, 5.8e-301, 0.557768738, 5.8e-301, 0.290784481]])
    b /= b.sum(1, keepdims=True)
    M = np.array([[0.1, 0.0, 0.2, 0.0, 0.1, 0.2, 0.3], [0.2, 0.1, 0.1, 0.2, 0.0, 0.1, 0.0]])
    reg, n_iter = 0.002, 50  # (max M - min M) / reg = 150: the scaling form
    assert otcore.sinkhorn(a, b[0], M, reg, n_iter=n_iter, tol=None).method == "scaling"
    res = otcore.sinkhorn(a, b, M, reg, n_iter=n_iter, tol=None)
    assert S._host_solve(a, b, M, reg, n_iter, "auto") is not None and res.method == "log"
    for p in range(2):
        cost, err, f, g = _algorithm1(a, b[p], M, reg, n_iter)
        assert res.cost[p] == pytest.approx(cost, rel=0, abs=1e-14)
        assert res.marginal_error[p] == pytest.approx(err, rel=0, abs=1e-14)
        np.testing.assert_allclose(res.grad[p], f - f.mean(), rtol=0, atol=1e-14)
        np.testing.assert_allclose(res.g[p] + res.f[p].mean(), g + f.mean(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["auto", "log"])
@pytest.mark.parametrize("reg", [0.1, 0.01])  # the scaling form and the shared-kernel log form
def test_one_hot_targets_stop_early_at_the_plain_loops_answer(method, reg):
    rng = np.random.default_rng(5)
    N, n, n_iter = 40, 4, 50
    a = rng.dirichlet(np.ones(n), N)
    b = np.eye(n)[rng.integers(0, n, N)]
    i = np.arange(n, dtype=np.float64)
    M = np.abs(i[:, None] - i[None, :])
    res = otcore.sinkhorn(a, b, M, reg, n_iter=n_iter, tol=None, method=method)
    assert S._host_solve(a, b, M, reg, n_iter, method) is not None
    assert res.method == ("scaling" if method == "auto" and reg == 0.1 else "log")
    assert res.n_iter < n_iter
    ref = [_algorithm1(a[p], b[p], M, reg, n_iter)[0] for p in range(N)]
    np.testing.assert_allclose(res.cost, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["auto", "log"])
def test_converged_cost_equals_pot(method):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(11)
    a = rng.random((4, 9)) + 0.05
    b = rng.random((4, 7)) + 0.05
    a /= a.sum(1, keepdims=True)
    b /= b.sum(1, keepdims=True)
    M = rng.random((9, 7))
    res = otcore.sinkhorn(a, b, M, 0.05, n_iter=3000, tol=None, method=method)
    assert S._host_solve(a, b, M, 0.05, 3000, method) is not None and res.converged
    for p in range(4):
        want = ot.sinkhorn2(a[p], b[p], M, 0.05, method="sinkhorn_log", numItermax=3000, stopThr=1e-14)
        assert res.cost[p] == pytest.approx(float(want), rel=0, abs=1e-8)


# --------------------------------------------------------------------------- refusals and routing


@pytest.mark.parametrize(("where", "value"), [
    ("a", np.nan), ("b", -0.1), ("a", np.inf), ("M", np.inf), ("M", -1.0), ("M", np.nan),
    ("b", "mismatch"), ("b", "all-zero"),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_refused_inputs_raise_the_general_engines_error(where, value, dtype, monkeypatch):
    x = {"a": np.full((2, 3), 1 / 3), "b": np.full((2, 4), 0.25), "M": np.ones((3, 4))}
    if value == "mismatch":
        x["b"] *= 1.01
    elif value == "all-zero":
        x["b"][1] = 0.0
    else:
        x[where][1, 1] = value
    a, b, M = (x[k].astype(dtype) for k in "abM")
    assert S._host_solve(a, b, M, 0.5, 10, "auto") is None
    with np.errstate(all="ignore"), pytest.raises(ValueError) as ours:
        otcore.sinkhorn(a, b, M, 0.5, n_iter=10, tol=None)
    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))
    with np.errstate(all="ignore"), pytest.raises(ValueError) as general:
        otcore.sinkhorn(a, b, M, 0.5, n_iter=10, tol=None)
    assert str(ours.value) == str(general.value)


def test_float32_totals_beyond_float32_range_raise(monkeypatch):
    a = b = np.array([3e38, 3e38], np.float32)
    M = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))
    with np.errstate(all="ignore"), pytest.raises(ValueError) as general:
        otcore.sinkhorn(a, b, M, 0.5, n_iter=10, tol=None)
    monkeypatch.undo()
    with np.errstate(all="ignore"), pytest.raises(ValueError) as ours:
        otcore.sinkhorn(a, b, M, 0.5, n_iter=10, tol=None)
    assert str(ours.value) == str(general.value)


_OVERFLOW = (np.array([1.0, 0.0]), np.array([1.0]), np.array([[2829112.33421415], [4028798.37537058]]),
             3998.9534705214296)


def test_driver_cost_with_large_costs_and_an_empty_bin():
    a, b, M, reg = _OVERFLOW
    ours = otcore.sinkhorn(a, b, M, reg, n_iter=3, tol=None, method="log")
    assert S._host_solve(a, b, M, reg, 3, "log") is not None
    assert ours.cost == pytest.approx(M[0, 0], rel=1e-12)  # all the mass on the first row
    assert ours.cost == pytest.approx(_algorithm1(a, b, M, reg, 3)[0], rel=1e-12)


def test_general_engine_cost_with_large_costs_and_an_empty_bin():
    a, b, M, reg = _OVERFLOW
    assert _general(a, b, M, reg, 3, "log").cost == pytest.approx(M[0, 0], rel=1e-12)


@pytest.mark.parametrize(("dtype", "mtol"), [(np.float64, 1e-6), (np.float32, 1e-4)])
def test_mass_tolerance_boundary_gives_the_general_verdict(dtype, mtol, monkeypatch):
    rng = np.random.default_rng(2)
    n, m = 5, 6
    a = rng.random((2, n)) + 0.1
    a /= a.sum(1, keepdims=True)
    b = rng.random((2, m)) + 0.1
    b /= b.sum(1, keepdims=True)
    M = rng.random((n, m))
    a, M = a.astype(dtype), M.astype(dtype)
    # relative differences of the totals around the tolerance; one inside it by less than the
    # driver's margin for its own summation order (4 (max(n, m) + 1) eps)
    margin = 4 * (max(n, m) + 1) * float(np.finfo(dtype).eps)
    seen, default = set(), S._HOST_WORK
    for k in [*np.linspace(-0.1, 0.1, 21), -0.5 * margin / mtol]:
        r = mtol * (1 + k)
        bt = (b * (1 + r / (1 - r))).astype(dtype)
        verdicts = []
        for work in (default, (0, 0, 0)):
            monkeypatch.setattr(S, "_HOST_WORK", work)
            if work == default:
                taken = S._host_solve(a, bt, M, 0.2, 30, "auto") is not None
            try:
                verdicts.append(otcore.sinkhorn(a, bt, M, 0.2, n_iter=30, tol=None))
            except ValueError as e:
                verdicts.append(str(e))
        ours, general = verdicts
        assert type(ours) is type(general)
        if isinstance(ours, str):
            assert ours == general and not taken
        else:
            np.testing.assert_allclose(ours.cost, general.cost, rtol=1e-5 if dtype == np.float32 else 1e-12)
        seen.add((taken, not isinstance(general, str)))
    # driver and general engine accept; only the general engine; neither
    assert seen == {(True, True), (False, True), (False, False)}


def _routed():
    rng = np.random.default_rng(4)
    a = rng.random((3, 5)) + 0.1
    a /= a.sum(-1, keepdims=True)
    b = rng.random((3, 4)) + 0.1
    b /= b.sum(-1, keepdims=True)
    M = rng.random((5, 4))
    kw = dict(n_iter=20, tol=None)
    return [
        pytest.param(a.astype(np.float32), b, M, 0.3, kw, id="mixed dtypes"),
        pytest.param(np.stack([a, a]), np.stack([b, b]), M, 0.3, kw, id="3-D batch"),
        pytest.param(a, b, M, 0.3, dict(kw, method="scaling"), id="method scaling"),
        pytest.param(a, b, M, 0.3, dict(kw, init=(rng.standard_normal(5), None)), id="init"),
        pytest.param(a, b, M, 0.3, dict(kw, reg_m=1.0), id="unbalanced"),
        pytest.param(a, b, M, np.float64(0.3), kw, id="numpy scalar reg"),
        pytest.param(a, b, M, 0.3, dict(kw, n_iter=np.int64(20)), id="numpy integer n_iter"),
        pytest.param(a[:0], b[:0], M, 0.3, kw, id="empty batch"),
        pytest.param(a.astype(np.float16), b.astype(np.float16), M.astype(np.float16), 0.3, kw, id="float16"),
    ]


@pytest.mark.parametrize(("a", "b", "M", "reg", "kw"), _routed())
def test_what_the_driver_does_not_take_is_the_general_engines(a, b, M, reg, kw, monkeypatch):
    if "init" not in kw and "reg_m" not in kw:  # (those two never reach the driver's scan)
        assert S._host_solve(a, b, M, reg, kw["n_iter"], kw.get("method", "auto")) is None
    ours = otcore.sinkhorn(a, b, M, reg, **kw)
    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))
    general = otcore.sinkhorn(a, b, M, reg, **kw)
    for k in ("cost", "reg_cost", "f", "g", "grad", "marginal_error"):
        x, y = getattr(ours, k), getattr(general, k)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert ours.n_iter == general.n_iter and ours.method == general.method


def test_torch_tensors_and_eps_scaling_without_tol_keep_their_behaviour(monkeypatch):
    torch = pytest.importorskip("torch")
    a, b, M = np.full(4, 0.25), np.full(3, 1 / 3), np.arange(12.0).reshape(4, 3)
    ours = otcore.sinkhorn(*map(torch.tensor, (a, b, M)), 1.0, n_iter=5, tol=None)
    with pytest.raises(ValueError, match="eps_scaling needs a tol"):
        otcore.sinkhorn(a, b, M, 1.0, n_iter=5, tol=None, eps_scaling=True)
    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))
    general = otcore.sinkhorn(*map(torch.tensor, (a, b, M)), 1.0, n_iter=5, tol=None)
    assert isinstance(ours.cost, torch.Tensor) and ours.f.dtype == torch.float64
    assert torch.equal(ours.f, general.f) and torch.equal(ours.cost, general.cost)


def test_work_limits_are_per_form(monkeypatch):
    rng = np.random.default_rng(6)
    a, b, M = np.full((2, 5), 0.2), np.full((2, 4), 0.25), rng.random((5, 4)) + 1.0
    span = float(M.max() - M.min())
    monkeypatch.setattr(S, "_HOST_WORK", (40, 40, 39))  # N n m = 40
    for ratio, taken in [(100.0, True), (400.0, True), (1000.0, False)]:
        assert (S._host_solve(a, b, M, span / ratio, 10, "auto") is not None) is taken
    monkeypatch.setattr(S, "_HOST_WORK", (39, 40, 40))
    assert S._host_solve(a, b, M, span / 100.0, 10, "auto") is None
    assert S._host_solve(a, b, M, span / 100.0, 10, "log") is not None  # log form: limit 40
    monkeypatch.setattr(S, "_HOST_WORK", (30, 30, 30))  # beyond max(_HOST_WORK): not scanned
    res = otcore.sinkhorn(a, b, M, span / 100.0, n_iter=10, tol=None)
    assert S._host_solve(a, b, M, span / 100.0, 10, "auto") is None and res.cost.shape == (2,)


# --------------------------------------------------------------------------- the bindings


def _args(N=2, n=3, m=4):
    A, B = np.full((N, n), 1 / n), np.full((N, m), 1 / m)
    M = np.arange(n * m, dtype=np.float64).reshape(n, m) / (n * m)
    return [A, B, M, 0.5, 10, 1e-6, 1e300, 200.0, 600.0, 1e-9, (1 << 20,) * 3, np.zeros((N, 2 * n + m + 5))]


_READONLY = np.zeros((2, 15))
_READONLY.flags.writeable = False


@pytest.mark.parametrize(("i", "value"), [
    (0, np.full((2, 3), 1 / 3, np.float32)),  # float32
    (1, np.full((2, 8), 0.25)[:, ::2]),  # not contiguous
    (0, np.full(3, 1 / 3)),  # 1-D
    (0, [[1 / 3] * 3] * 2),  # a list
    (2, np.ones((4, 3))),  # M transposed
    (2, np.ones((3, 4), order="F")),
    (11, np.zeros((2, 14))),  # out too narrow
    (11, _READONLY),
    (11, np.zeros((3, 15))),  # A and B hold 2 pairs, out 3: Na not in {1, N}
    (3, 0.0), (3, -1.0), (3, np.inf), (3, np.nan),  # reg
    (4, 0),  # n_iter
    (None, None),  # no bins
])
def test_bindings_reject_malformed_arguments(i, value):
    args = _args()
    if i is None:
        args = _args(n=1)
        args[0], args[2], args[11] = np.zeros((2, 0)), np.zeros((0, 4)), np.zeros((2, 9))
    else:
        args[i] = value
    with pytest.raises(ValueError, match="_csinkhorn"):
        _csinkhorn.fixed(*args)


def test_bindings_outputs_and_refusal():
    args = _args()
    with pytest.raises(TypeError):
        _csinkhorn.fixed(*args[:10], (1, 2), args[11])  # limits: three integers
    done, used_log, converged = _csinkhorn.fixed(*args)
    ref = _general(args[0], args[1], args[2], 0.5, 10, "auto")
    assert (done, used_log, converged) == (ref.n_iter, ref.method == "log", ref.converged)
    W = args[-1]  # one row per pair: f, g, grad, cost, reg_cost, error, iterations, log form
    for x, y in [(W[:, :3], ref.f), (W[:, 3:7], ref.g), (W[:, 7:10], ref.grad),
                 (W[:, 10:13], np.c_[ref.cost, ref.reg_cost, ref.marginal_error]), (W[:, 13:], [[done, 0]] * 2)]:
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-13)
    args[0] = np.array([[1 / 3, np.nan, 1 / 3], [1 / 3] * 3])
    assert _csinkhorn.fixed(*args) is None


# --------------------------------------------------------------------------- threads, the loss core


def test_threads_give_the_sequential_answers():
    rng = np.random.default_rng(3)
    M = rng.random((24, 20))
    jobs = [(_masses(rng, (64, 24), 1e-12, 1.0), _masses(rng, (64, 20), 1e-12, 1.0), reg)
            for reg in (0.5, 0.02, 0.001, 0.004, 0.1, 0.01, 0.0015, 0.3)]  # every form
    run = lambda job: otcore.sinkhorn(job[0], job[1], M, job[2], n_iter=300, tol=None)  # noqa: E731
    seq = [run(j) for j in jobs]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(run, jobs))
    assert {r.method for r in seq} == {"scaling", "log"}
    for r1, r2 in zip(seq, par):
        for k in ("cost", "reg_cost", "f", "g", "grad", "marginal_error"):
            np.testing.assert_array_equal(getattr(r1, k), getattr(r2, k))


@pytest.mark.parametrize("value", ["sinkhorn", "regularized"])
@pytest.mark.parametrize("need", [(True, True, False), (True, False, False), (False, True, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_core_equals_the_general_engine(value, need, dtype, monkeypatch):
    rng = np.random.default_rng(8)
    a = _masses(rng, (5, 6), 1e-30, 1.0).astype(dtype)
    b = _masses(rng, (7,), 1e-30, 1.0).astype(dtype)
    M = rng.random((6, 7)).astype(dtype)
    kw = dict(reg=0.05, n_iter=40, value=value, grad="frogner")
    assert S._host_solve(a, b, M, 0.05, 40, "auto") is not None
    ours = sinkhorn_loss_grads(a, b, M, need, **kw)
    monkeypatch.setattr(S, "_HOST_WORK", (0, 0, 0))
    general = sinkhorn_loss_grads(a.astype(np.float64), b.astype(np.float64), M.astype(np.float64), need, **kw)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for x, y in zip((ours[0], *ours[1]), (general[0], *general[1])):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == dtype and x.shape == y.shape
            np.testing.assert_allclose(x, y, rtol=0, atol=tol)


def test_loss_core_gradient_equals_finite_differences():
    rng = np.random.default_rng(9)
    a, b = rng.random(8) + 0.1, rng.random(6) + 0.1
    a, b = a / a.sum(), b / b.sum()
    M = rng.random((8, 6))
    kw = dict(reg=0.1, n_iter=2000, value="regularized")
    assert S._host_solve(a, b, M, 0.1, 2000, "auto") is not None
    _, (d_a, _, _) = sinkhorn_loss_grads(a, b, M, (True, False, False), **kw)
    h = 1e-5
    for _ in range(4):
        d = rng.standard_normal(8)
        d -= d.mean()  # along the simplex
        up = sinkhorn_loss_grads(a + h * d, b, M, (False, False, False), **kw)[0]
        down = sinkhorn_loss_grads(a - h * d, b, M, (False, False, False), **kw)[0]
        assert (up - down) / (2 * h) == pytest.approx(d_a @ d, rel=0, abs=1e-6)
