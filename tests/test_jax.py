"""otcore.jax: custom_vjp gradients (check_grads), jit/vmap, references, dtypes, bad input."""

import importlib
import re
import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from otcore.jax import (  # noqa: E402
    cdf_emd_loss,
    emd_loss,
    sinkhorn_loss,
    tree_emd_loss,
    wasserstein_1d_loss,
)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _core(name):
    return importlib.import_module(f"otcore._{name}")


def _ordinal(k, p=1):
    i = np.arange(k, dtype=float)
    return np.abs(i[:, None] - i[None, :]) ** p


def _data(n=4, k=4, seed=0):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(n, k)))
    t = jax.nn.softmax(jnp.asarray(rng.normal(size=(n, k))), axis=-1)
    return z, t


def _grads(f, args, **kw):
    check_grads(f, args, order=1, modes=["rev"], **kw)


# ----------------------------------------------------------------- Sinkhorn
def test_sinkhorn_check_grads_regularized():
    _core("sinkhorn")
    z, t = _data()
    M = jnp.asarray(_ordinal(4))
    f = lambda z, zt: sinkhorn_loss(  # noqa: E731
        jax.nn.softmax(z), jax.nn.softmax(zt), M, 0.5, n_iter=300, value="regularized", reduction="sum"
    )
    _grads(f, (z, jnp.log(t)), atol=1e-6, rtol=1e-5)


def test_sinkhorn_jit_vmap_and_torch_agree():
    sk = _core("sinkhorn")
    z, t = _data(5, 3, seed=1)
    p = jax.nn.softmax(z)
    M = jnp.asarray(_ordinal(3))
    eager = sinkhorn_loss(p, t, M, 0.2, reduction="none")
    jitted = jax.jit(lambda p, t: sinkhorn_loss(p, t, M, 0.2, reduction="none"))(p, t)
    mapped = jax.vmap(lambda p, t: sinkhorn_loss(p, t, M, 0.2))(p, t)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(eager), rtol=1e-10)
    ref = sk.sinkhorn(np.asarray(p), np.asarray(t), np.asarray(M), 0.2, n_iter=50, tol=None)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(ref.cost), rtol=1e-10)
    # gradient: Frogner's closed form, also under jit
    g = jax.jit(jax.grad(lambda p: sinkhorn_loss(p, t, M, 0.2, reduction="sum")))(p)
    np.testing.assert_allclose(np.asarray(g), np.asarray(ref.grad), rtol=1e-8, atol=1e-12)


def test_float32_and_reductions():
    _core("sinkhorn")
    z, t = _data()
    p = jax.nn.softmax(z).astype(jnp.float32)
    M = _ordinal(4)
    out = sinkhorn_loss(p, t, M, 0.5, reduction="none")
    assert out.dtype == jnp.float32 and out.shape == (4,)
    np.testing.assert_allclose(float(sinkhorn_loss(p, t, M, 0.5, reduction="sum")), float(out.sum()), rtol=1e-6)
    np.testing.assert_allclose(float(sinkhorn_loss(p, t, M, 0.5)), float(out.mean()), rtol=1e-6)
    assert jax.grad(lambda p: sinkhorn_loss(p, t, M, 0.5))(p).dtype == jnp.float32


# ----------------------------------------------------------------- exact
def test_emd_loss_value_grads_jit_vmap():
    _core("exact")
    ot = pytest.importorskip("ot")
    z, t = _data(3, 4, seed=2)
    M = jnp.asarray(_ordinal(4) + np.random.default_rng(1).random((4, 4)) * 0.1)
    p = jax.nn.softmax(z)
    got = emd_loss(p, t, M, reduction="none")
    want = [ot.emd2(np.asarray(p[i]), np.asarray(t[i]), np.asarray(M)) for i in range(3)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda p: emd_loss(p, t, M, reduction="none"))(p)), want, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda p, t: emd_loss(p, t, M))(p, t)), want, rtol=1e-9)
    _grads(lambda z: emd_loss(jax.nn.softmax(z), t, M), (z,), atol=1e-5)


# ----------------------------------------------------------------- 1D and tree
@pytest.mark.parametrize("rho", [1, 2])
def test_cdf_emd_check_grads_and_jit(rho):
    _core("onedim")
    z, t = _data(3, 5, seed=3)
    f = lambda z, zt: cdf_emd_loss(jax.nn.softmax(z), jax.nn.softmax(zt), rho=rho, reduction="sum")  # noqa: E731
    _grads(f, (z, jnp.log(t)))
    np.testing.assert_allclose(float(jax.jit(f)(z, jnp.log(t))), float(f(z, jnp.log(t))), rtol=1e-12)


def test_cdf_emd_value_matches_scipy_and_vmap():
    _core("onedim")
    stats = pytest.importorskip("scipy.stats")
    z, t = _data(3, 6, seed=4)
    p = jax.nn.softmax(z)
    got = cdf_emd_loss(p, t, reduction="none")
    x = np.arange(6.0)
    want = [stats.wasserstein_distance(x, x, np.asarray(p[i]), np.asarray(t[i])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax.vmap(cdf_emd_loss)(p, t)), want, rtol=1e-10)


def test_tree_emd_check_grads_and_jit():
    _core("tree")
    parent = [-1, 0, 0, 1, 1, 2]
    weight = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 1.0])
    z, t = _data(3, 6, seed=5)
    f = lambda z: tree_emd_loss(jax.nn.softmax(z), t, parent, weight)  # noqa: E731
    _grads(f, (z,))
    np.testing.assert_allclose(float(jax.jit(f)(z)), float(f(z)), rtol=1e-12)


def test_wasserstein_1d_value_and_grads():
    _core("onedim")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(6)
    u = jnp.asarray(rng.normal(size=(2, 7)))
    v = jnp.asarray(rng.normal(size=(2, 7)) + 0.3)
    got = wasserstein_1d_loss(u, v, reduction="none")
    want = [stats.wasserstein_distance(np.asarray(u[i]), np.asarray(v[i])) for i in range(2)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)
    _grads(lambda u, v: wasserstein_1d_loss(u, v, p=2), (u, v))


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "fn",
    [
        lambda p, t, M: sinkhorn_loss(p, t, M, 0.1),
        lambda p, t, M: emd_loss(p, t, M),
        lambda p, t, M: cdf_emd_loss(p, t),
        lambda p, t, M: tree_emd_loss(p, t, [-1, 0, 1]),
    ],
    ids=["sinkhorn", "emd", "cdf", "tree"],
)
def test_bad_inputs(fn):
    M = jnp.asarray(_ordinal(3))
    p = jnp.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="pred"):
        fn(p, p[:, :2], M)
    with pytest.raises(ValueError, match="pred"):
        fn(jnp.ones((2, 3), dtype=jnp.int32), p, M)
    with pytest.raises(ValueError, match="target"):
        fn(p, jnp.ones((2, 3), dtype=jnp.int32), M)
    with pytest.raises(ValueError, match="pred.*negative"):
        fn(p.at[0, 0].set(-0.1), p, M)
    with pytest.raises(ValueError, match="(?i)pred.*nan"):
        fn(p.at[1, 2].set(jnp.nan), p, M)


def test_bad_cost_and_options():
    M = jnp.asarray(_ordinal(3))
    p = jnp.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="M has shape"):
        sinkhorn_loss(p, p, M[:2], 0.1)
    with pytest.raises(ValueError, match="reduction"):
        sinkhorn_loss(p, p, M, 0.1, reduction="avg")
    with pytest.raises(TypeError, match="pred"):
        sinkhorn_loss("x", p, M, 0.1)


def test_closed_forms_under_jit_and_vmap():
    _core("onedim")
    tree = _core("tree")
    rng = np.random.default_rng(8)
    u = jnp.asarray(rng.normal(size=(3, 5)))
    v = u[::-1] + 0.2
    w1 = wasserstein_1d_loss(u, v, reduction="none")
    np.testing.assert_allclose(np.asarray(jax.jit(lambda u, v: wasserstein_1d_loss(u, v, reduction="none"))(u, v)),
                               np.asarray(w1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.vmap(wasserstein_1d_loss)(u, v)), np.asarray(w1), rtol=1e-12)
    p, t = jax.nn.softmax(u), jax.nn.softmax(v)
    T = tree.compile_tree([-1, 0, 0, 1, 1])
    want = tree_emd_loss(p, t, T, reduction="none")
    np.testing.assert_allclose(np.asarray(jax.vmap(lambda a, b: tree_emd_loss(a, b, T))(p, t)), np.asarray(want))
    g_batched = jax.jit(jax.vmap(jax.grad(lambda a, b: tree_emd_loss(a, b, T))))(p, t)
    g_full = jax.grad(lambda a: tree_emd_loss(a, t, T, reduction="sum"))(p)
    np.testing.assert_allclose(np.asarray(g_batched), np.asarray(g_full), atol=1e-12)
    g_cdf = jax.jit(jax.vmap(jax.grad(lambda a, b: cdf_emd_loss(a, b, rho=2, spacing=jnp.array([1.0, 2, 1, 1])))))(p, t)
    assert g_cdf.shape == (3, 5) and bool(jnp.all(jnp.isfinite(g_cdf)))


def test_all_inputs_closed_over_under_jit():
    """Concrete (closed-over) arrays under jit: no value check reads them, results as eager."""
    for name in ("sinkhorn", "exact", "onedim", "tree"):
        _core(name)
    z, t = _data(3, 4, seed=10)
    p, M = jax.nn.softmax(z), jnp.asarray(_ordinal(4))
    u, v = z, z[::-1] + 0.5
    fns = [
        lambda: sinkhorn_loss(p, t, M, 0.5),
        lambda: emd_loss(p, t, M),
        lambda: cdf_emd_loss(p, t, spacing=jnp.array([1.0, 2.0, 1.0])),
        lambda: tree_emd_loss(p, t, [-1, 0, 0, 1]),
        lambda: wasserstein_1d_loss(u, v, t, None, p=2),
    ]
    for fn in fns:
        np.testing.assert_allclose(float(jax.jit(fn)()), float(fn()), rtol=1e-10)


def test_sinkhorn_method_chosen_from_a_concrete_cost_under_jit():
    """A closed-over (concrete) M lets the adapter pick scaling under jit; same loss and grads."""
    from otcore._losses import sinkhorn_method as _static_method

    rng = np.random.default_rng(5)
    z = jnp.asarray(rng.normal(size=(6, 4)), dtype=jnp.float32)
    t = jax.nn.one_hot(jnp.arange(6) % 4, 4)
    M = 1.0 - jnp.eye(4)
    assert _static_method(M, 0.1) == "scaling"
    assert _static_method(M, 1e-3) == "log"

    def obj(z):
        return sinkhorn_loss(jax.nn.softmax(z), t, M, 0.1, n_iter=30)

    got_v, got_g = jax.jit(jax.value_and_grad(obj))(z)
    ref_v, ref_g = jax.value_and_grad(obj)(z)  # eager
    np.testing.assert_allclose(np.asarray(got_v), np.asarray(ref_v), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_g), np.asarray(ref_g), rtol=1e-4, atol=1e-6)

    def obj_traced_m(z, M):  # M traced: the core's "auto" takes the log method
        return sinkhorn_loss(jax.nn.softmax(z), t, M, 0.1, n_iter=30)

    v2 = jax.jit(obj_traced_m)(z, M)
    np.testing.assert_allclose(np.asarray(v2), np.asarray(ref_v), rtol=1e-5)


# ----------------------------------------------------------------- gradients w.r.t. the cost and points
# fixed iterations (the only mode inside a JAX trace), enough to converge to rounding here
CONV = {"n_iter": 150, "tol": None}


def _hists(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    return jnp.asarray(a / a.sum()), jnp.asarray(b / b.sum())


def _points(seed=0, n=5, m=4, d=2):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, d))), jnp.asarray(rng.normal(size=(m, d)))


def test_issue_example_gradient_wrt_cost_is_the_plan():
    a, b = jnp.array([[0.5, 0.5]]), jnp.array([[0.25, 0.75]])
    M = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    g = jax.grad(lambda M: emd_loss(a, b, M, reduction="sum"))(M)
    np.testing.assert_allclose(np.asarray(g), [[0.25, 0.25], [0.0, 0.5]], atol=1e-12)
    g = jax.grad(lambda M: sinkhorn_loss(a, b, M, 0.5, reduction="sum", value="regularized", **CONV))(M)
    res = _core("sinkhorn").sinkhorn(np.asarray(a[0]), np.asarray(b[0]), np.asarray(M), 0.5, **CONV)
    np.testing.assert_allclose(np.asarray(g), res.plan, rtol=1e-10)


@pytest.mark.parametrize(
    "loss",
    [
        lambda a, b, M: emd_loss(a, b, M),
        lambda a, b, M: sinkhorn_loss(a, b, M, 0.5, **CONV),
        lambda a, b, M: sinkhorn_loss(a, b, M, 0.5, value="regularized", **CONV),
        lambda a, b, M: sinkhorn_loss(a, b, M, 0.5, grad="implicit", **CONV),
    ],
    ids=["emd", "sinkhorn", "regularized", "implicit"],
)
def test_check_grads_wrt_cost_and_points(loss):
    from otcore import cost_matrix

    a, b = _hists(1, 5, 4)
    x, y = _points(1)
    M = jnp.asarray(np.random.default_rng(3).random((5, 4)))
    _grads(lambda M: loss(a, b, M), (M,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # (check_grads evaluates at numpy points: back to a jax.Array before cost_matrix)
    _grads(lambda x: loss(a, b, cost_matrix(jnp.asarray(x), y)), (x,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_check_grads_implicit_wrt_histograms():
    z, zt = _data(3, 4, seed=2)
    M = jnp.asarray(np.random.default_rng(2).random((4, 4)))
    def loss(z, zt):
        return sinkhorn_loss(jax.nn.softmax(z), jax.nn.softmax(zt), M, 0.4, grad="implicit", **CONV)

    _grads(loss, (z, jnp.log(zt)),
           eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_points_through_cost_matrix_match_pot_torch(seed):
    """JAX gradients of points through otcore.cost_matrix equal POT's torch autograd (1e-8 relative)."""
    torch = pytest.importorskip("torch")
    ot = pytest.importorskip("ot")
    from otcore import cost_matrix

    a, b = _hists(seed, 5, 4)
    x, y = _points(seed)
    at, bt, yt = (torch.tensor(np.asarray(v)) for v in (a, b, y))
    cases = [
        (lambda M: ot.emd2(at, bt, M), lambda M: emd_loss(a, b, M)),
        (
            lambda M: ot.sinkhorn2(at, bt, M, 5.0, numItermax=100000, stopThr=1e-15),
            lambda M: sinkhorn_loss(a, b, M, 5.0, n_iter=300),
        ),
    ]
    for ref_fn, fn in cases:
        xr = torch.tensor(np.asarray(x), requires_grad=True)
        ref_fn(ot.dist(xr, yt)).backward()
        g = jax.grad(lambda x: fn(cost_matrix(x, y)))(x)
        np.testing.assert_allclose(np.asarray(g), xr.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_no_silent_missing_gradients():
    p = jnp.array([[0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="spacing receives no gradient"):
        jax.grad(lambda s: cdf_emd_loss(p, p[:, ::-1], spacing=s))(jnp.ones(2))
    with pytest.raises(ValueError, match="grad"):
        sinkhorn_loss(p, p, 1.0 - jnp.eye(3), 0.1, grad="exact")


def test_wasserstein_1d_check_grads_positions_and_weights():
    rng = np.random.default_rng(0)
    u, v = jnp.asarray(rng.normal(size=(2, 5))), jnp.asarray(rng.normal(size=(2, 4)))
    wu, wv = jnp.asarray(rng.random((2, 5)) + 0.1), jnp.asarray(rng.random((2, 4)) + 0.1)
    for p in (1, 2):
        _grads(lambda *a: wasserstein_1d_loss(*a, p=p), (u, v, wu, wv), eps=1e-6, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------- the same dtype / device contract as torch
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_contract_identical_to_torch(dtype):
    """float16/bfloat16: computed in float32, cast back, masses compared at half precision -- in both adapters."""
    torch = pytest.importorskip("torch")
    import otcore.torch as ott

    rng = np.random.default_rng(6)
    logits = rng.normal(size=(8, 10)).astype(np.float32)
    labels = np.arange(8) % 10
    M = np.abs(np.arange(10.0)[:, None] - np.arange(10.0)).astype(np.float32)
    tdt = getattr(torch, dtype)
    pt = torch.softmax(torch.tensor(logits), -1).to(tdt)
    tt = torch.nn.functional.one_hot(torch.tensor(labels), 10).to(tdt)
    pj = jnp.asarray(pt.float().numpy()).astype(dtype)
    tj = jnp.asarray(tt.float().numpy()).astype(dtype)
    pairs = [
        (lambda p, t: ott.sinkhorn_loss(p, t, M, 1.0), lambda p, t: sinkhorn_loss(p, t, M, 1.0)),
        (lambda p, t: ott.emd_loss(p, t, M), lambda p, t: emd_loss(p, t, M)),
        (lambda p, t: ott.cdf_emd_loss(p, t, rho=2), lambda p, t: cdf_emd_loss(p, t, rho=2)),
    ]
    for ft, fj in pairs:
        lt, lj = ft(pt, tt), fj(pj, tj)
        assert str(lt.dtype).endswith(dtype) and lj.dtype == jnp.dtype(dtype)
        assert float(lt.float()) == pytest.approx(float(lj.astype(jnp.float32)), rel=2e-3)
        gj = jax.grad(lambda p: fj(p, tj).astype(jnp.float32))(pj)
        assert gj.dtype == jnp.dtype(dtype) and bool(jnp.all(jnp.isfinite(gj.astype(jnp.float32))))
    for f in (lambda: ott.sinkhorn_loss(pt, tt * 1.1, M, 1.0), lambda: sinkhorn_loss(pj, tj * 1.1, M, 1.0)):
        with pytest.raises(ValueError, match="same total mass.*float16/bfloat16"):
            f()


_DEVICE_SCRIPT = r"""
import jax, jax.numpy as jnp, torch
import otcore.jax as otj, otcore.torch as ott
cpu = jax.devices("cpu")
p = jnp.array([[0.2, 0.3, 0.5]])
q = jax.device_put(p, cpu[1])
msgs = []
for f in (lambda: otj.sinkhorn_loss(p, q, 1.0 - jnp.eye(3), 0.1),
          lambda: ott.sinkhorn_loss(torch.tensor([[0.2, 0.3, 0.5]]), torch.empty(1, 3, device="meta"),
                                    1.0 - torch.eye(3), 0.1)):
    try:
        f()
    except ValueError as exc:
        msgs.append(str(exc))
assert len(msgs) == 2, msgs
for m in msgs:
    assert m.startswith("target is on ") and "but pred is on" in m, m
    assert "all inputs of a loss must be on one device" in m, m
print("ok")
"""


def test_device_contract_identical_to_torch():
    """A target on another device raises the same ValueError in both adapters (two JAX CPU devices)."""
    pytest.importorskip("torch")
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# ----------------------------------------------------------------- jit compiles once
def _jaxpr_size(n_iter):
    z, t = _data(4, 4)
    M = 1.0 - jnp.eye(4)

    def obj(z, M):  # M traced (no concrete cost): the core's "auto" runs the log method
        return sinkhorn_loss(jax.nn.softmax(z), t, M, 0.1, n_iter=n_iter)

    jaxpr = jax.make_jaxpr(jax.value_and_grad(obj))(z, M)
    # the loop's trip count is a number in the program text; its digits are not program size
    return len(re.sub(r"length=\d+", "length=N", str(jaxpr)))


def test_jaxpr_size_does_not_grow_with_n_iter():
    _jaxpr_size(3)  # JAX adds a one-off constant to the first trace of the softmax gradient
    assert _jaxpr_size(3000) == _jaxpr_size(300) == _jaxpr_size(30)
