"""Tests of otcore._validate: every check, its message (naming the argument), the numpy
fast accept path against the full path, autograd-safe reads and lazy (jit) arrays.
"""

import math
import re
import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import otcore._validate as V
from otcore._validate import (
    ConvergenceWarning,
    batch_shape,
    check_choice,
    check_cost,
    check_float_dtype,
    check_histograms,
    check_index,
    check_int,
    check_power,
    check_scalar,
    check_values,
)
from tests._helpers import asxp, assert_namespace


def _npx():
    import array_api_compat.numpy as npx

    return npx


# --------------------------------------------------------------------------- scalars


def test_convergence_warning_is_runtime_warning():
    assert issubclass(ConvergenceWarning, RuntimeWarning)


def test_check_choice():
    assert check_choice("method", "log", ("log", "plain")) == "log"
    with pytest.raises(ValueError, match=r"unknown method 'x'; choose one of 'log', 'plain'"):
        check_choice("method", "x", ["log", "plain"])
    with pytest.raises(ValueError, match="unknown method 3"):
        check_choice("method", 3, ["log"])


def test_check_scalar_accepts():
    assert check_scalar("reg", 1) == 1.0 and isinstance(check_scalar("reg", 1), float)
    assert check_scalar("reg", np.float32(0.5)) == 0.5
    assert check_scalar("reg", np.array(2.0)) == 2.0  # 0-d arrays
    assert check_scalar("reg", np.array(3)) == 3.0
    assert check_scalar("reg", None, allow_none=True) is None
    assert check_scalar("x", 0.0, nonneg=True) == 0.0
    assert check_scalar("x", 5, minimum=5) == 5.0


@pytest.mark.parametrize(
    "value,kw,exc,msg",
    [
        (None, {}, TypeError, "reg must be a number, got None"),
        ("1", {}, TypeError, "reg must be a real number, got str"),
        (True, {}, TypeError, "reg must be a real number, got bool"),
        (np.array(True), {}, TypeError, "reg must be a real number, got ndarray"),
        (np.str_("2"), {}, TypeError, "reg must be a real number, got str_"),
        (np.ones(2), {}, TypeError, "reg must be a real number, got ndarray"),
        (1 + 2j, {}, TypeError, "reg must be a real number, got complex"),
        (np.array(1 + 2j), {}, TypeError, "reg must be a real number"),
        (math.nan, {}, ValueError, "reg must be finite, got nan"),
        (math.inf, {}, ValueError, "reg must be finite, got inf"),
        (0.0, {"positive": True}, ValueError, "reg must be > 0, got 0.0"),
        (-1.0, {"nonneg": True}, ValueError, "reg must be >= 0, got -1.0"),
        (0.5, {"minimum": 1.0}, ValueError, "reg must be >= 1.0, got 0.5"),
    ],
)
def test_check_scalar_errors(value, kw, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        check_scalar("reg", value, **kw)


def test_check_scalar_0d_arrays_of_each_backend(xp):
    assert check_scalar("reg", xp.asarray(0.25)) == 0.25


def test_check_scalar_torch_requires_grad_no_warning():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_scalar("reg", torch.tensor(0.5, requires_grad=True)) == 0.5


def test_check_int():
    assert check_int("n", 3) == 3
    assert check_int("n", np.int64(2)) == 2
    assert check_int("n", None, allow_none=True) is None
    assert check_int("n", 0, minimum=0) == 0
    with pytest.raises(TypeError, match="n must be an integer, got None"):
        check_int("n", None)
    with pytest.raises(TypeError, match="n must be an integer, got float 2.0"):
        check_int("n", 2.0)
    with pytest.raises(TypeError, match="n must be an integer, got bool True"):
        check_int("n", True)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0)


def test_check_power():
    assert check_power("p", 1) == 1.0
    assert check_power("p", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match=r"rho must be >= 1, got 0.5; the cost \|.\|\^rho"):
        check_power("rho", 0.5)
    with pytest.raises(ValueError, match="p must be finite"):
        check_power("p", math.inf)
    with pytest.raises(ValueError, match="p must be finite"):
        check_power("p", -math.inf, allow_inf=True)
    with pytest.raises(ValueError, match="p must be finite"):
        check_power("p", math.nan, allow_inf=True)
    with pytest.raises(TypeError, match="p must be a real number"):
        check_power("p", "2")
    with pytest.raises(ValueError, match=r"^p must be >= 1, got 0.5; metrics need p >= 1$"):
        check_power("p", 0.5, reason="metrics need p >= 1")


def test_check_float_dtype(xp):
    assert check_float_dtype(xp, None) == xp.float64
    assert check_float_dtype(xp, xp.float32) == xp.float32
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        check_float_dtype(xp, xp.int64)


def test_check_index(xp):
    v = check_index(asxp(xp, np.array([0, 2, 1])), "rows", xp, 3, "n")
    assert_namespace(v, xp)
    assert tuple(check_index([0, 1], "rows", xp, 2, "n").shape) == (2,)
    with pytest.raises(ValueError, match=re.escape("rows has indices outside [0, 3) (min -1, max 2); they must be valid indices below n = 3")):
        check_index(asxp(xp, np.array([-1, 2])), "rows", xp, 3, "n")
    with pytest.raises(ValueError, match=r"cols has indices outside \[0, 2\) \(min 0, max 2\)"):
        check_index(asxp(xp, np.array([0, 2])), "cols", xp, 2, "m")
    with pytest.raises(ValueError, match="rows must be a 1-D array of indices, got a scalar"):
        check_index(asxp(xp, np.array(1)), "rows", xp, 3, "n")
    with pytest.raises(ValueError, match="rows is empty"):
        check_index(asxp(xp, np.zeros(0, dtype=np.int64)), "rows", xp, 3, "n")
    with pytest.raises(TypeError, match="rows must hold integer indices, got dtype"):
        check_index(asxp(xp, np.array([0.0, 1.0])), "rows", xp, 3, "n")


# --------------------------------------------------------------------------- values and costs


def test_check_values(xp):
    check_values(asxp(xp, np.array([0.0, 1.0])), "a", xp)
    check_values(asxp(xp, np.zeros((0, 3))), "a", xp)  # empty: nothing to check
    check_values(asxp(xp, np.array([-1.0, 1.0])), "y", xp, nonneg=False)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="w contains NaN or infinite weights; all weights must be finite"):
            check_values(asxp(xp, np.array([1.0, bad])), "w", xp, what="weights")
        with pytest.raises(ValueError, match="y contains NaN or infinite"):
            check_values(asxp(xp, np.array([-1.0, bad])), "y", xp, nonneg=False)
    with pytest.raises(ValueError, match=re.escape("a has negative masses (min -0.5); masses must be >= 0")):
        check_values(asxp(xp, np.array([1.0, -0.5])), "a", xp, what="masses")
    # NaN is reported before a negative entry
    with pytest.raises(ValueError, match="contains NaN"):
        check_values(asxp(xp, np.array([-1.0, np.nan])), "a", xp)


def test_check_values_torch_requires_grad_no_warning():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as txp

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_values(torch.ones(3, requires_grad=True), "a", txp)
        with pytest.raises(ValueError, match=r"a has negative entries \(min -1\)"):
            check_values(torch.tensor([-1.0, 2.0], requires_grad=True), "a", txp)


def test_check_cost(xp):
    M = check_cost(asxp(xp, np.ones((2, 3))), xp, shape=(2, 3))
    assert M.dtype == xp.float64
    assert check_cost(xp.asarray([[1, 2]]), xp).dtype == xp.float64
    assert check_cost(asxp(xp, np.ones((2, 2))), xp, dtype=xp.float32).dtype == xp.float32
    check_cost(asxp(xp, -np.ones((2, 2))), xp, nonneg=False)
    cases = [
        (np.ones(3), {}, "C must be a 2-D cost matrix of shape (n, m), got shape (3,)"),
        (np.ones((2, 3)), {"square": True}, "C must be square, got shape (2, 3)"),
        (np.ones((2, 3)), {"shape": (4, 3)}, "C has 2 rows but the source histogram has 4 bins; C must have shape (len(a), len(b)) = (4, 3)"),
        (np.ones((2, 3)), {"shape": (2, None)}, None),
        (np.ones((2, 3)), {"shape": (None, 5)}, "C has 3 columns but the target histogram has 5 bins; C must have shape (len(a), len(b)) = (n, 5)"),
        (np.ones((2, 3)), {"shape": (2, 5)}, "C has 3 columns but the target histogram has 5 bins; C must have shape (len(a), len(b)) = (2, 5)"),
        (np.array([[1.0, np.nan]]), {}, "C contains NaN or infinite costs; all costs must be finite"),
        (np.array([[1.0, -2.0]]), {}, "C has negative costs (min -2); costs must be >= 0"),
    ]
    for M, kw, msg in cases:
        if msg is None:
            check_cost(asxp(xp, M), xp, name="C", **kw)
            continue
        with pytest.raises(ValueError, match=re.escape(msg)):
            check_cost(asxp(xp, M), xp, name="C", **kw)


def test_batch_shape_and_mass_tolerance():
    npx = _npx()
    assert batch_shape("a", (3, 1), "b", (4,)) == (3, 4)
    assert batch_shape("a", (), "b", (2,)) == (2,)
    with pytest.raises(ValueError, match=r"batch shapes of a \(3,\) and b \(4,\) do not broadcast"):
        batch_shape("a", (3,), "b", (4,))
    assert mass_tolerance(npx.float64) == 1e-6
    assert mass_tolerance(npx.float32) == 1e-4


# --------------------------------------------------------------------------- histograms

_H = np.array([0.25, 0.75])
_BAD_HIST = [
    # (a, b, M, kwargs, exception, message)
    (np.float64(1.0), None, None, {}, ValueError, "a must be a histogram with bins on its last axis, got a scalar"),
    (np.zeros(0), None, None, {}, ValueError, "a is empty; a histogram needs at least one bin"),
    (_H, np.zeros((3, 0)), None, {}, ValueError, "b is empty; a histogram needs at least one bin"),
    (np.array([0.5, np.nan]), None, None, {}, ValueError, "a contains NaN or infinite masses; all masses must be finite"),
    (_H, np.array([np.inf, 1.0]), None, {}, ValueError, "b contains NaN or infinite masses"),
    (np.array([1.5, -0.5]), _H, None, {}, ValueError, "a has negative masses (min -0.5); masses must be >= 0"),
    (np.array([[0.5, 0.5], [0.0, 0.0]]), None, None, {}, ValueError, "a has an all-zero histogram; every histogram needs positive total mass"),
    (_H, np.zeros(2), None, {}, ValueError, "b has an all-zero histogram"),
    (np.ones((3, 2)) / 2, np.ones((4, 2)) / 2, None, {}, ValueError, "batch shapes of a (3,) and b (4,) do not broadcast"),
    (_H, np.array([0.5, 0.6]), None, {}, ValueError, "a and b must have the same total mass: sum(a) = 1, sum(b) = 1.1 (relative tolerance 1e-06); normalise both"),
    (np.ones((2, 2)) / 2, np.array([[0.5, 0.5], [0.5, 0.7]]), None, {}, ValueError, "a and b must have the same total mass (batch entry 1): sum(a) = 1, sum(b) = 1.2"),
    (_H, _H, np.ones((2, 2, 2)), {}, ValueError, "M must be a 2-D cost matrix of shape (n, m), got shape (2, 2, 2)"),
    (_H, _H, np.ones((3, 2)), {}, ValueError, "M has 3 rows but the source histogram has 2 bins; M must have shape (len(a), len(b)) = (2, 2)"),
    (_H, np.ones(3) / 3, np.ones((2, 2)), {}, ValueError, "M has 2 columns but the target histogram has 3 bins"),
    (_H, _H, np.array([[0.0, np.nan], [1.0, 0.0]]), {}, ValueError, "M contains NaN or infinite costs"),
    (_H, _H, np.array([[0.0, -1.0], [1.0, 0.0]]), {}, ValueError, "M has negative costs (min -1); costs must be >= 0"),
    (_H, _H, np.array([[0.0, -np.inf], [1.0, 0.0]]), {"nonneg_cost": False}, ValueError, "M contains NaN or infinite costs"),
    (_H, _H + 0j, None, {}, TypeError, "b is complex; pass real values"),
    (np.array(["x", "y"]), None, None, {}, TypeError, "a must hold numbers"),
    (_H, np.array([0.5, 0.6]), None, {"names": ("p", "q", "C")}, ValueError, "p and q must have the same total mass: sum(p) = 1, sum(q) = 1.1"),
    (np.array([0.5, -0.5]), None, None, {"names": ("pred", "t", "C")}, ValueError, "pred has negative masses"),
]


@pytest.mark.parametrize("a,b,M,kw,exc,msg", _BAD_HIST)
def test_check_histograms_errors(a, b, M, kw, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        check_histograms(a, b, M, **kw)


@pytest.mark.parametrize("a,b,M,kw,exc,msg", [c for c in _BAD_HIST if c[4] is ValueError])
def test_check_histograms_errors_every_backend(xp, a, b, M, kw, exc, msg):
    conv = [None if v is None else asxp(xp, np.asarray(v)) for v in (a, b, M)]
    with pytest.raises(exc, match=re.escape(msg)):
        check_histograms(*conv, **kw)


def test_check_histograms_mixed_libraries():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same array library"):
        check_histograms(_H, torch.tensor(_H))


def test_check_histograms_converts(xp):
    a = xp.asarray([1, 3])
    b = asxp(xp, np.array([2.0, 2.0]), dtype=xp.float32)
    ns, a2, b2, M2 = check_histograms(a, b, xp.asarray([[0, 1], [1, 0]]))
    assert a2.dtype == b2.dtype == M2.dtype == xp.float64  # int -> float64 wins over float32
    ns, a3, b3, M3 = check_histograms(asxp(xp, _H, dtype=xp.float32), b / 4)
    assert a3.dtype == b3.dtype == xp.float32 and M3 is None
    assert_namespace(a3, xp)


def test_check_histograms_options():
    check_histograms(_H, np.array([1.0, 2.0]), check_mass=False)
    check_histograms(_H, _H, -np.ones((2, 2)), nonneg_cost=False)
    _, a, b, M = check_histograms(np.ones((3, 1, 2)) / 2, np.ones((4, 2)) / 2)  # broadcast batch
    assert b.shape == (4, 2)
    check_histograms([0.5, 0.5], [1, 0])  # sequences
    # float32 totals within 1e-4 pass; float64 needs 1e-6
    check_histograms(np.array([0.5, 0.5], np.float32), np.array([0.5, 0.50005], np.float32))
    with pytest.raises(ValueError, match="same total mass"):
        check_histograms(np.array([0.5, 0.5]), np.array([0.5, 0.50005]))


def test_check_histograms_returns_inputs_unchanged():
    a, b, M = _H.copy(), _H[::-1].copy(), np.ones((2, 2))
    xp, a2, b2, M2 = check_histograms(a, b, M)
    assert a2 is a and b2 is b and M2 is M
    assert xp is _npx()


def test_check_histograms_torch_requires_grad():
    torch = pytest.importorskip("torch")
    a = torch.tensor([0.2, 0.8], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)
    M = torch.ones((2, 2), dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, a2, b2, M2 = check_histograms(a, b, M)
        assert a2 is a and a2.requires_grad and M2.requires_grad
        with pytest.raises(ValueError, match="sum\\(b\\) = 2"):
            check_histograms(a, b * 2)
        with pytest.raises(ValueError, match="a has negative masses"):
            check_histograms(a - 0.5, b)
    assert a.grad is None


# --------------------------------------------------------------------------- fast path == full path


def _outcome(a, b, M, kw, fast: bool):
    """(result arrays or None, exception type and message or None) of one path."""
    ctx = mock.patch.object(V, "_fast_accept", lambda *args: False) if not fast else mock.MagicMock()
    with ctx:
        try:
            xp, a2, b2, M2 = check_histograms(a, b, M, **kw)
        except (ValueError, TypeError) as exc:
            return None, (type(exc), str(exc))
    return (xp, a2, b2, M2), None


def _same(a, b, M, kw):
    rf, ef = _outcome(a, b, M, kw, fast=True)
    rs, es = _outcome(a, b, M, kw, fast=False)
    assert ef == es
    if rf is not None:
        assert rf[0] is rs[0]
        for u, v in zip(rf[1:], rs[1:]):
            assert (u is None) == (v is None)
            if u is not None:
                assert u.dtype == v.dtype
                np.testing.assert_array_equal(u, v)
    return ef


@st.composite
def _histogram_inputs(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    n = draw(st.integers(1, 6))
    m = draw(st.sampled_from([n, n + 1]))
    batch_a = draw(st.sampled_from([(), (3,), (2, 3), (4,)]))
    batch_b = draw(st.sampled_from([(), (3,), (1, 3), (), (3,), (2,)]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.random(batch_a + (n,)) + 0.01
    b = rng.random(batch_b + (m,)) + 0.01
    a /= a.sum(-1, keepdims=True)
    b /= b.sum(-1, keepdims=True)
    b = b * draw(st.sampled_from([1.0, 1.0, 1.0, 2.0, 1 + 1e-7, 1 + 5e-5, 1 + 2e-4]))
    M = draw(st.sampled_from([None, "ok", "ok", "wrong"]))
    if M == "ok":
        M = rng.random((n, m))
    elif M == "wrong":
        M = rng.random((n + 1, m))
    corrupt = draw(st.sampled_from(["none"] * 6 + ["nan_a", "neg_b", "inf_a", "zero_row_a", "nan_M", "neg_M", "dtype_b"]))
    if corrupt == "nan_a":
        a.flat[rng.integers(a.size)] = np.nan
    elif corrupt == "inf_a":
        a.flat[rng.integers(a.size)] = np.inf
    elif corrupt == "neg_b":
        b.flat[rng.integers(b.size)] = -0.1
    elif corrupt == "zero_row_a":
        a[..., :] = 0.0
    elif corrupt == "nan_M" and M is not None:
        M.flat[0] = np.nan
    elif corrupt == "neg_M" and M is not None:
        M.flat[0] = -1.0
    a = a.astype(dtype)
    b = b.astype(np.float64 if corrupt == "dtype_b" else dtype)
    if M is not None:
        M = M.astype(dtype)
    kw = {"check_mass": draw(st.booleans()), "nonneg_cost": draw(st.booleans())}
    return a, b, M, kw


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_histogram_inputs())
def test_fast_path_matches_full_path(inputs):
    a, b, M, kw = inputs
    _same(a, b, M, kw)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([np.float64, np.float32]),
    n=st.integers(1, 300),
    batch=st.sampled_from([(), (5,), (2, 3)]),
    k=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_path_mass_tolerance_boundary(dtype, n, batch, k, seed):
    """Totals within a hair of the tolerance: both paths give the same verdict."""
    rng = np.random.default_rng(seed)
    a = (rng.random(batch + (n,)) + 0.01).astype(dtype)
    b = (rng.random(batch + (n,)) + 0.01).astype(dtype)
    a = a / a.sum(-1, keepdims=True, dtype=dtype)
    b = b / b.sum(-1, keepdims=True, dtype=dtype)
    tol = 1e-6 if dtype == np.float64 else 1e-4
    b = (b * dtype(1 + k * tol)).astype(dtype)
    _same(a, b, None, {})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 100, 1000])
@pytest.mark.parametrize("k", [0.5, 0.8, 0.95, 1 - 1e-7, 1 - 1e-9, 1.0, 1 + 1e-9, 1 + 1e-6])
def test_fast_path_inside_its_margin(dtype, n, k, rng):
    """Relative mass differences within the BLAS-sum margin of the tolerance.

    (float32, n = 100, k in [0.5, 1): the fast path defers and the full path accepts.)
    """
    a = rng.random((8, n)) + 0.01
    a /= a.sum(-1, keepdims=True)
    tol = 1e-6 if dtype == np.float64 else 1e-4
    b = a[:, ::-1] * (1 + k * tol)
    _same(a.astype(dtype), b.astype(dtype), None, {})
    _same(a[0].astype(dtype), b[0].astype(dtype), None, {})


def test_fast_path_taken_for_valid_numpy():
    a = np.full((4, 5), 0.2)
    M = np.ones((5, 5))
    assert V._fast_accept(a, a, M, True, True)
    assert V._fast_accept(a[0], a, None, True, True)
    assert V._fast_accept(a.astype(np.float32), a.astype(np.float32), None, True, True)
    assert not V._fast_accept(a, a.astype(np.float32), None, True, True)  # mixed dtypes: full path
    assert not V._fast_accept(a, a * 2, None, True, True)
    assert V._fast_accept(a, a * 2, None, False, True)


def test_checks_skip_subclasses_and_lists():
    """Lists take the full path (and still pass)."""
    xp, a, b, _ = check_histograms([0.5, 0.5], [0.25, 0.75])
    assert isinstance(a, np.ndarray) and a.dtype == np.float64


# --------------------------------------------------------------------------- lazy arrays


def test_jit_skips_value_checks():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.jit
    def f(a, b, M):
        xp, a, b, M = check_histograms(a, b, M)
        check_values(M, "M", xp)
        check_cost(M, xp)
        return xp.sum(a) + xp.sum(b)

    # negative masses, unequal totals, NaN cost: unreadable under jit, so not checked
    out = f(jnp.array([-0.5, 1.0]), jnp.array([3.0, 1.0]), jnp.array([[0.0, jnp.nan], [1.0, 0.0]]))
    assert float(out) == 4.5
    # outside jit the same inputs are checked
    with pytest.raises(ValueError, match="a has negative masses"):
        check_histograms(jnp.array([-0.5, 1.0]), jnp.array([3.0, 1.0]))


def test_jit_still_checks_shapes():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.jit
    def f(a, b, M):
        return check_histograms(a, b, M)[1]

    with pytest.raises(ValueError, match="M has 3 rows but the source histogram has 2 bins"):
        f(jnp.ones(2) / 2, jnp.ones(2) / 2, jnp.ones((3, 2)))


def test_jit_scalar_and_index_checks():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    @jax.jit
    def g(r):
        return check_scalar("reg", r)

    with pytest.raises(TypeError, match="reg must be a concrete number.*static argument"):
        g(jnp.asarray(0.5))

    @jax.jit
    def h(v):
        return check_index(v, "rows", V.namespace(v), 2, "n")

    h(jnp.asarray([0, 5]))  # range unreadable under jit: not checked


def test_dask_skips_value_checks():
    da = pytest.importorskip("dask.array")
    xp = V.namespace(da.ones(2))
    check_values(da.from_array(np.array([-1.0, np.nan])), "a", xp)  # lazy: skipped


def test_jit_skips_value_checks_on_closed_over_constants():
    """Inside jit, operations on concrete (closed-over) arrays are staged too: the
    value checks must skip them instead of failing on a tracer conversion."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    target = jnp.asarray([0.2, 0.3, 0.5], dtype=jnp.float32)

    @jax.jit
    def f(x):
        _, a, b, _ = check_histograms(target, target)
        return jnp.sum(a - b) + jnp.sum(x)

    assert float(f(jnp.ones(3, dtype=jnp.float32))) == 3.0
    with pytest.raises(ValueError, match="negative masses"):  # eager checks still run
        check_histograms(jnp.asarray([0.5, -0.5, 1.0]), target)


# --------------------------------------------------------------------------- POT habits


@pytest.mark.parametrize("missing", [None, []])
def test_missing_weights_are_uniform_like_pot(missing):
    ot = pytest.importorskip("ot")

    M = np.abs(np.arange(3.0)[:, None] - np.arange(5.0)[None, :]) ** 2
    import otcore

    got = otcore.emd2(missing, missing, M)
    ref = ot.emd2([], [], M)
    np.testing.assert_allclose(float(got), ref, rtol=1e-12)
    a = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(float(otcore.emd2(a, missing, M)), ot.emd2(a, [], M), rtol=1e-12)


@pytest.mark.parametrize(
    "key, hint",
    [("numItermax", "n_iter"), ("stopThr", "tol"), ("log", "result record"), ("warmstart", "init"), ("verbose", "prints nothing")],
)
def test_pot_keywords_name_the_otcore_equivalent(key, hint):
    import otcore

    M = np.ones((2, 2))
    with pytest.raises(TypeError, match=hint):
        otcore.sinkhorn([0.5, 0.5], [0.5, 0.5], M, 1.0, **{key: 1})
    with pytest.raises(TypeError, match=key):
        otcore.emd2([0.5, 0.5], [0.5, 0.5], M, **{key: 1})
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        otcore.sinkhorn2([0.5, 0.5], [0.5, 0.5], M, 1.0, bogus=1)


# ---- the one mass scan / rule ---------------------------------------------------------

from hypothesis.extra.numpy import arrays  # noqa: E402

from otcore._validate import check_equal_totals, mass_tolerance, scan_masses  # noqa: E402


def test_mass_tolerance_per_dtype(xp):
    assert mass_tolerance(xp.float64) == 1e-6
    assert mass_tolerance(xp.float32) == 1e-4
    assert mass_tolerance(np.float16) == 1e-2  # half-precision masses agree to ~1e-3 at best


@pytest.mark.parametrize(
    "x,locate,match",
    [
        (np.array([[0.5, np.nan]]), None, r"A row 0, bin 1 is nan; masses must be finite"),
        (np.array([[0.5, 0.5], [0.2, -np.inf]]), None, r"A row 1, bin 1 is -inf"),
        (np.array([[0.5, 0.5], [0.2, -0.1]]), None, r"A row 1, bin 1 has negative mass -0.1"),
        (np.array([[0.5, 0.5], [0.0, 0.0]]), None, r"A row 1 is all zero"),
        (np.array([0.0, 0.0]), None, r"A has an all-zero histogram"),
        (np.array([[1e308, 1e308]]), None, r"A row 0 sums to inf"),
        (np.array([[1.0], [-1.0]]), lambda i: f"data.csv:{i + 2}", r"data.csv:3, bin 0 has negative mass"),
        (np.ones((2, 3, 2)) * np.array([1, -1]), None, r"A row 0, bin 1 has negative"),
    ],
)
def test_scan_masses_locates(x, locate, match):
    with pytest.raises(ValueError, match=match):
        scan_masses(x, "A", locate=locate)


def test_scan_masses_hint():
    with pytest.raises(ValueError, match=r"masses must be >= 0 \(apply a softmax first\)"):
        scan_masses(np.array([[1.0, -1.0]]), "pred", hint=" (apply a softmax first)")


def test_scan_masses_returns_host_totals(xp):
    rng = np.random.default_rng(0)
    X = rng.random((4, 3))
    for dt in (xp.float64, xp.float32):
        tot = scan_masses(asxp(xp, X, dt), "A", xp)
        assert isinstance(tot, np.ndarray) and tot.dtype == np.float64
        np.testing.assert_allclose(tot, X.sum(1), rtol=1e-6)
    assert scan_masses(asxp(xp, np.ones((0, 3))), "A", xp) is None


def test_scan_masses_torch_requires_grad_and_jax_trace():
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 3, requires_grad=True)
    np.testing.assert_array_equal(scan_masses(t, "pred"), [3.0, 3.0])
    jax = pytest.importorskip("jax")
    jax.jit(lambda v: (scan_masses(v, "pred"), v)[1])(jax.numpy.ones(3))  # traced: not read


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equal_totals_one_rule(dtype):
    tol = mass_tolerance(dtype)
    ok = np.array([1.0, 1.0 + 0.9 * tol])
    check_equal_totals(ok, np.array([1.0 + 0.5 * tol]), tol=tol)
    with pytest.raises(ValueError, match=r"A row 0 sums to 1 but B row 0 sums to 1.000?0?02"):
        check_equal_totals(np.array([1.0]), np.array([1.0 + 2 * tol]), tol=tol)
    # every pair, not only "each vs the first": 1 - 0.6 tol and 1 + 0.6 tol differ by 1.2 tol
    with pytest.raises(ValueError, match="A row 1 sums to .* but B row 0 sums to"):
        check_equal_totals(np.array([1.0, 1.0 - 0.6 * tol]), np.array([1.0 + 0.6 * tol]), tol=tol)


def test_equal_totals_locate_hook_and_hint():
    files = ("a.csv", "b.csv")
    with pytest.raises(ValueError, match=r"a.csv:2 sums to 1 but b.csv:5 sums to 3 .*pass --normalize"):
        check_equal_totals(
            np.array([1.0]),
            np.array([1.0, 1.0, 1.0, 3.0]),
            tol=1e-6,
            locate=lambda side, i: f"{files[side]}:{i + 2}",
            hint="pass --normalize",
        )


@settings(max_examples=50, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)),
             elements=st.floats(-1.0, 1e3) | st.sampled_from([0.0, np.nan, np.inf, 1e-300])),
)
def test_scan_masses_agrees_with_check_histograms(X):
    # one scan: scan_masses and check_histograms accept and reject the same input
    try:
        check_histograms(X)
        ok = True
    except ValueError:
        ok = False
    try:
        tot = scan_masses(X, "a")
        assert ok
        np.testing.assert_allclose(tot, X.sum(-1))
    except ValueError:
        assert not ok
