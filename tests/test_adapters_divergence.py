"""The Sinkhorn divergence loss in both adapters: gradients by finite differences, GeomLoss, dtype/device."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import otcore
from otcore._losses import sinkhorn_divergence_loss_grads

torch = pytest.importorskip("torch")
from otcore.torch import SinkhornDivergence  # noqa: E402
from otcore.torch import sinkhorn_divergence_loss as torch_loss  # noqa: E402
from otcore.torch import sinkhorn_loss as torch_loss_sk  # noqa: E402

REG = 0.1
TOL = 1e-12


def _clouds(seed, n=6, m=8, d=2):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, d)), rng.random((m, d)) + 0.3
    la, lb = rng.normal(size=n), rng.normal(size=m)
    return x, y, la, lb


def _softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _core_value(a, b, x, y, reg=REG, scale=1.0):
    return float(otcore.sinkhorn_divergence(a, b, otcore.PointCloud(x, y, scale=scale), reg, tol=TOL, n_iter=10_000))


# --------------------------------------------------------------------------- the core function
def test_core_grads_match_central_differences():
    x, y, la, lb = _clouds(0)
    a, b = _softmax(la), _softmax(lb)
    value, (d_a, d_b, d_x, d_y) = sinkhorn_divergence_loss_grads(a, b, x, y, reg=REG, tol=TOL, n_iter=10_000)
    assert value == pytest.approx(_core_value(a, b, x, y), rel=1e-12)
    h = 1e-5
    for arr, grad in ((x, d_x), (y, d_y)):
        for idx in [(0, 0), (1, 1), (arr.shape[0] - 1, 0)]:
            e = np.zeros_like(arr)
            e[idx] = h
            plus = _core_value(a, b, x + e, y) if arr is x else _core_value(a, b, x, y + e)
            minus = _core_value(a, b, x - e, y) if arr is x else _core_value(a, b, x, y - e)
            assert (plus - minus) / (2 * h) == pytest.approx(grad[idx], rel=1e-6, abs=1e-9)
    # weights: along directions that keep the mass (the divergence compares equal masses)
    for w, grad, i, j in ((a, d_a, 0, 3), (b, d_b, 1, 5)):
        e = np.zeros_like(w)
        e[i], e[j] = h, -h
        plus = _core_value(a + e, b, x, y) if w is a else _core_value(a, b + e, x, y)
        minus = _core_value(a - e, b, x, y) if w is a else _core_value(a, b - e, x, y)
        assert (plus - minus) / (2 * h) == pytest.approx(grad[i] - grad[j], rel=1e-6, abs=1e-9)


def test_core_computes_only_what_is_needed():
    x, y, la, lb = _clouds(1)
    _, grads = sinkhorn_divergence_loss_grads(_softmax(la), _softmax(lb), x, y, (False, True, False, True), reg=REG)
    assert grads[0] is None and grads[2] is None
    assert grads[1].shape == (8,) and grads[3].shape == (8, 2)


# --------------------------------------------------------------------------- torch
def _t(v, req=False):
    return torch.tensor(v, dtype=torch.float64, requires_grad=req)


def test_torch_gradcheck_positions_and_weights():
    x, y, la, lb = _clouds(2)
    args = (_t(la, True), _t(x, True), _t(lb, True), _t(y, True))

    def f(la, x, lb, y):
        return torch_loss(torch.softmax(la, -1), x, torch.softmax(lb, -1), y, REG, tol=TOL, n_iter=10_000)

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_torch_batched_weights_and_reductions():
    x, y, _, _ = _clouds(3)
    rng = np.random.default_rng(3)
    A, B = _softmax(rng.normal(size=(3, 6))), _softmax(rng.normal(size=(3, 8)))
    xt = _t(x, True)
    per = torch_loss(_t(A), xt, _t(B), _t(y), REG, tol=TOL, reduction="none")
    assert per.shape == (3,)
    for k in range(3):
        assert float(per[k]) == pytest.approx(_core_value(A[k], B[k], x, y), rel=1e-10)
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    (per * w).sum().backward()
    want = sum(
        float(w[k]) * sinkhorn_divergence_loss_grads(A[k], B[k], x, y, reg=REG, tol=TOL)[1][2] for k in range(3)
    )
    np.testing.assert_allclose(xt.grad.numpy(), want, rtol=1e-9, atol=1e-12)
    mean = torch_loss(_t(A), _t(x), _t(B), _t(y), REG, tol=TOL)
    assert float(mean) == pytest.approx(float(per.mean()), rel=1e-12)
    # one weight vector against a batch broadcasts
    one = torch_loss(_t(A[0]), _t(x), None, _t(y), REG, tol=TOL, reduction="none")
    assert float(one) == pytest.approx(_core_value(A[0], np.full(8, 1 / 8), x, y), rel=1e-10)


def test_torch_module_mirrors_samplesloss_signature():
    x, y, la, lb = _clouds(4)
    loss = SinkhornDivergence(REG, tol=TOL)
    u = loss(_t(x), _t(y))
    assert float(u) == pytest.approx(_core_value(None, None, x, y), rel=1e-10)
    a, b = _softmax(la), _softmax(lb)
    assert float(loss(_t(a), _t(x), _t(b), _t(y))) == pytest.approx(_core_value(a, b, x, y), rel=1e-10)
    with pytest.raises(TypeError, match=r"\(x, y\) or \(a, x, b, y\)"):
        loss(_t(x))


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(1, 12),
    m=st.integers(1, 12),
    shift=st.floats(-1, 1),
    spread=st.sampled_from([1e-3, 0.3, 1.0]),
)
def test_torch_matches_core_and_is_zero_on_itself(n, m, shift, spread):
    rng = np.random.default_rng(n * 13 + m)
    x = rng.normal(size=(n, 2)) * spread
    y = rng.normal(size=(m, 2)) * spread + shift
    v = float(torch_loss(None, _t(x), None, _t(y), 1.0))
    want = float(otcore.sinkhorn_divergence(None, None, otcore.PointCloud(x, y), 1.0, tol=1e-9, n_iter=1000))
    assert v == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert v >= -1e-9
    assert abs(float(torch_loss(None, _t(x), None, _t(x.copy()), 1.0))) < 1e-9


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_torch_dtype_contract(dtype):
    x, y, la, lb = _clouds(5)
    a, b = _softmax(la), _softmax(lb)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    loss = torch_loss(torch.tensor(a, dtype=dtype), xt, torch.tensor(b, dtype=dtype), torch.tensor(y, dtype=dtype), REG)
    assert loss.dtype == dtype
    loss.backward()
    assert xt.grad.dtype == dtype
    ref = _core_value(a, b, x, y)
    rtol = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4}[dtype]
    assert float(loss) == pytest.approx(ref, rel=rtol)
    want = sinkhorn_divergence_loss_grads(a, b, x, y, reg=REG, tol=TOL)[1][2]
    np.testing.assert_allclose(xt.grad.double().numpy(), want, rtol=0, atol=rtol * np.abs(want).max() * 5)


def test_torch_device_mismatch_is_a_clear_error():
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y is on meta but x is on cpu.*\.to\(x\.device\)"):
        torch_loss(None, x, None, torch.zeros(3, 2, dtype=torch.float64, device="meta"), REG)


def test_torch_bad_input():
    x = _t(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pass a non-empty \\(n, d\\) array"):
        torch_loss(None, _t(np.zeros(3)), None, x, REG)
    with pytest.raises(ValueError, match="same dimension d"):
        torch_loss(None, x, None, _t(np.zeros((3, 3))), REG)
    with pytest.raises(ValueError, match="one weight per point"):
        torch_loss(_t(np.ones(2) / 2), x, None, x, REG)
    with pytest.raises(ValueError, match="sinkhorn_divergence_loss: .*mass"):
        torch_loss(_t(np.ones(3)), x, None, x, REG)
    with pytest.raises(ValueError, match="reg"):
        torch_loss(None, x, None, x, -1.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        torch_loss(None, np.zeros((3, 2)), None, x, REG)


# --------------------------------------------------------------------------- GeomLoss
def test_matches_geomloss_values_and_position_gradients():
    geomloss = pytest.importorskip("geomloss")
    x, y, la, lb = _clouds(6, n=30, m=40)
    a, b = _softmax(la), _softmax(lb)
    blur = math.sqrt(REG)
    ref = geomloss.SamplesLoss("sinkhorn", p=2, blur=blur, debias=True, scaling=0.999, backend="tensorized")
    xg, xo = _t(x, True), _t(x, True)
    want = ref(_t(a), xg, _t(b), _t(y))
    want.backward()
    got = SinkhornDivergence(REG, scale=0.5, tol=TOL)(_t(a), xo, _t(b), _t(y))
    got.backward()
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    # GeomLoss's autograd gradient is that of its last annealing step (off by ~(1 - scaling) relative);
    # its values are accurate, so its central differences are the tight reference
    gx = xo.grad.numpy()
    np.testing.assert_allclose(gx, xg.grad.numpy(), rtol=5e-3, atol=1e-3 * np.abs(gx).max())
    h = 1e-5
    for idx in [(0, 0), (7, 1), (29, 0)]:
        e = np.zeros_like(x)
        e[idx] = h
        fd = (float(ref(_t(a), _t(x + e), _t(b), _t(y))) - float(ref(_t(a), _t(x - e), _t(b), _t(y)))) / (2 * h)
        assert gx[idx] == pytest.approx(fd, rel=1e-4, abs=1e-8)


# --------------------------------------------------------------------------- JAX
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from otcore.jax import sinkhorn_divergence_loss as jax_loss  # noqa: E402


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_jax_grads_match_central_differences(x64):
    x, y, la, lb = _clouds(7)

    def f(la, x, lb, y):
        return jax_loss(jax.nn.softmax(la), x, jax.nn.softmax(lb), y, REG, tol=TOL, n_iter=10_000)

    args = [jnp.asarray(v) for v in (la, x, lb, y)]
    grads = jax.grad(f, argnums=(0, 1, 2, 3))(*args)
    h = 1e-6
    rng = np.random.default_rng(7)
    for k in range(4):
        u = rng.normal(size=args[k].shape)
        plus = [v + h * u if i == k else v for i, v in enumerate(args)]
        minus = [v - h * u if i == k else v for i, v in enumerate(args)]
        fd = (float(f(*plus)) - float(f(*minus))) / (2 * h)
        assert float(jnp.sum(grads[k] * u)) == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_jax_jit_batch_and_agreement_with_torch(x64):
    x, y, _, _ = _clouds(8)
    rng = np.random.default_rng(8)
    A, B = _softmax(rng.normal(size=(2, 6))), _softmax(rng.normal(size=(2, 8)))
    f = jax.jit(lambda x: jax_loss(jnp.asarray(A), x, jnp.asarray(B), jnp.asarray(y), REG, tol=TOL, reduction="sum"))
    v, g = jax.value_and_grad(f)(jnp.asarray(x))
    xt = _t(x, True)
    tv = torch_loss(_t(A), xt, _t(B), _t(y), REG, tol=TOL, reduction="sum")
    tv.backward()
    assert float(v) == pytest.approx(float(tv), rel=1e-10)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    per = jax_loss(jnp.asarray(A), jnp.asarray(x), jnp.asarray(B), jnp.asarray(y), REG, tol=TOL, reduction="none")
    assert per.shape == (2,)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_jax_dtype_contract(dtype):
    x, y, la, lb = _clouds(9)
    a, b = _softmax(la), _softmax(lb)
    cast = lambda v: jnp.asarray(v).astype(dtype)  # noqa: E731
    f = lambda x: jax_loss(cast(a), x, cast(b), cast(y), REG)  # noqa: E731
    v, g = jax.value_and_grad(f)(cast(x))
    assert v.dtype == jnp.dtype(dtype) and g.dtype == jnp.dtype(dtype)
    rtol = {"float16": 2e-2, "bfloat16": 5e-2, "float32": 1e-4}[dtype]
    assert float(v) == pytest.approx(_core_value(a, b, x, y), rel=rtol)


def test_jax_bad_input(x64):
    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="same dimension d"):
        jax_loss(None, x, None, jnp.zeros((3, 3)), REG)
    with pytest.raises(ValueError, match="one weight per point"):
        jax_loss(jnp.ones(2) / 2, x, None, x, REG)
    with pytest.raises(ValueError, match="negative"):
        jax_loss(jnp.array([-0.5, 1.0, 0.5]), x, None, x, REG)
    with pytest.raises(TypeError, match="x must be a jax.Array"):
        jax_loss(None, "points", None, x, REG)


# --------------------------------------------------------------------------- unbalanced sinkhorn_loss (reg_m)
def _unbalanced_inputs(seed=11):
    rng = np.random.default_rng(seed)
    return rng.random((2, 5)) + 0.05, (rng.random((2, 7)) + 0.05) * 1.7, rng.random((5, 7))


def test_unbalanced_core_grads_match_central_differences():
    from otcore._losses import sinkhorn_unbalanced_loss_grads

    a, b, M = _unbalanced_inputs()
    kw = dict(reg=0.3, reg_m=(0.7, 1.3), tol=1e-13, n_iter=100_000)
    value, (d_a, d_b, d_M) = sinkhorn_unbalanced_loss_grads(a, b, M, **kw)
    h = 1e-6
    for k, (arr, grad) in enumerate(((a, d_a), (b, d_b), (M, d_M))):
        u = np.random.default_rng(k).normal(size=arr.shape)
        args_p = [a, b, M]
        args_m = [a, b, M]
        args_p[k], args_m[k] = arr + h * u, arr - h * u
        fd = (sinkhorn_unbalanced_loss_grads(*args_p, **kw)[0] - sinkhorn_unbalanced_loss_grads(*args_m, **kw)[0]) / (2 * h)
        an = (grad * u).sum(axis=tuple(range(1, u.ndim))) if k < 2 else (grad * u).sum(axis=(1, 2))
        np.testing.assert_allclose(an, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("reg_m", [0.5, (0.7, 1.3), (math.inf, 2.0)])
def test_unbalanced_torch_gradcheck_and_pot(reg_m):
    ot = pytest.importorskip("ot")
    a, b, M = _unbalanced_inputs()
    if isinstance(reg_m, tuple) and reg_m[0] == math.inf:
        b = b / b.sum(-1, keepdims=True) * a.sum(-1, keepdims=True)  # an exact side: keep it feasible
    kw = dict(value="regularized", tol=1e-12, n_iter=100_000, reduction="none")
    f = lambda a, b, M: torch_loss_sk(a, b, M, 0.3, reg_m=reg_m, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(f, (_t(a, True), _t(b, True), _t(M, True)), eps=1e-6, atol=1e-6, rtol=1e-5)
    if not isinstance(reg_m, tuple):
        got = f(_t(a), _t(b), _t(M)).numpy()
        def kl(p, q):  # generalised KL
            return float(np.sum(p * np.log(p / q) - p + q))

        for k in range(2):  # the unbalanced objective at POT's plan
            P = ot.sinkhorn_unbalanced(a[k], b[k], M, 0.3, reg_m, reg_type="kl", numItermax=100_000, stopThr=1e-14)
            want = (np.sum(P * M) + 0.3 * kl(P, np.outer(a[k], b[k]))
                    + reg_m * kl(P.sum(1), a[k]) + reg_m * kl(P.sum(0), b[k]))
            assert got[k] == pytest.approx(want, rel=1e-8)


def test_unbalanced_jax_matches_torch_and_half_precision(x64):
    from otcore.jax import sinkhorn_loss as jax_sk

    a, b, M = _unbalanced_inputs()
    kw = dict(value="regularized", tol=1e-12, n_iter=100_000, reduction="sum")
    g = jax.grad(lambda *v: jax_sk(*v, 0.3, reg_m=0.5, **kw), argnums=(0, 1, 2))(*map(jnp.asarray, (a, b, M)))
    ts = [_t(v, True) for v in (a, b, M)]
    torch_loss_sk(*ts, 0.3, reg_m=0.5, **kw).backward()
    for gj, t in zip(g, ts):
        np.testing.assert_allclose(np.asarray(gj), t.grad.numpy(), rtol=1e-9, atol=1e-12)
    # float16: computed in float32, masses not rescaled, cast back
    h = torch_loss_sk(*(torch.tensor(v, dtype=torch.float16) for v in (a, b, M)), 0.3, reg_m=0.5,
                      value="regularized", reduction="sum")
    assert h.dtype == torch.float16
    assert float(h) == pytest.approx(float(torch_loss_sk(*map(_t, (a, b, M)), 0.3, reg_m=0.5, **kw)), rel=1e-2)


def test_unbalanced_needs_regularized_value():
    a, b, M = _unbalanced_inputs()
    with pytest.raises(ValueError, match='value="regularized"'):
        torch_loss_sk(_t(a), _t(b), _t(M), 0.3, reg_m=0.5)
    with pytest.raises(ValueError, match="reg_m"):
        torch_loss_sk(_t(a), _t(b), _t(M), 0.3, reg_m=-1.0, value="regularized")
