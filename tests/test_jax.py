"""otcore.jax: custom_vjp gradients (check_grads), jit/vmap, references, dtypes, bad input."""

import importlib
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
    with pytest.raises(ValueError, match="pred.*NaN"):
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
