"""otcore.torch: gradients (gradcheck), references (POT, scipy), dtype/device, reductions, bad input."""

import importlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from otcore.torch import (  # noqa: E402
    WassersteinLoss,
    cdf_emd_loss,
    emd_loss,
    sinkhorn_loss,
    tree_emd_loss,
    wasserstein_1d_loss,
)

D = torch.float64
CUDA = torch.cuda.is_available()


def _core(name):
    return importlib.import_module(f"otcore._{name}")


def _ordinal(k, p=1):
    i = np.arange(k, dtype=float)
    return np.abs(i[:, None] - i[None, :]) ** p


def _data(n=5, k=4, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=dtype)
    t = torch.softmax(torch.randn(n, k, generator=g, dtype=dtype), -1)
    return z, t


def test_import_otcore_imports_neither_torch_nor_jax():
    code = (
        "import sys, importlib, pkgutil, otcore\n"
        "for m in pkgutil.iter_modules(otcore.__path__):\n"
        "    if m.name not in ('torch', 'jax') and not m.name.startswith('__'):\n"
        "        importlib.import_module('otcore.' + m.name)\n"
        "bad = [m for m in ('torch', 'jax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------- Sinkhorn
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sinkhorn_gradcheck_regularized(reduction):
    _core("sinkhorn")
    z, t = _data()
    M = torch.as_tensor(_ordinal(4), dtype=D)
    z.requires_grad_(True)
    zt = torch.log(t).clone().requires_grad_(True)

    def f(z, zt):
        out = sinkhorn_loss(
            torch.softmax(z, -1), torch.softmax(zt, -1), M, 0.5,
            n_iter=2000, tol=1e-13, value="regularized", reduction=reduction,
        )
        return out

    assert torch.autograd.gradcheck(f, (z, zt), atol=1e-6, rtol=1e-4)


def test_sinkhorn_value_matches_pot():
    _core("sinkhorn")
    ot = pytest.importorskip("ot")
    z, t = _data(3, 5)
    p = torch.softmax(z, -1)
    M = _ordinal(5, 2) / 16.0
    got = sinkhorn_loss(p, t, torch.as_tensor(M), 0.1, n_iter=3000, reduction="none")
    want = [ot.sinkhorn2(p[i].numpy(), t[i].numpy(), M, 0.1, numItermax=10000, stopThr=1e-13) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), np.asarray(want, dtype=float), rtol=1e-6)


def test_sinkhorn_surrogate_gradient_is_frogner():
    """value='sinkhorn' back-propagates the same (Frogner) gradient as 'regularized'."""
    sk = _core("sinkhorn")
    z, t = _data()
    M = torch.as_tensor(_ordinal(4), dtype=D)
    p = torch.softmax(z, -1).requires_grad_(True)
    sinkhorn_loss(p, t, M, 0.3, reduction="sum").backward()
    res = sk.sinkhorn(p.detach(), t, M, 0.3, n_iter=50, tol=None)
    torch.testing.assert_close(p.grad, res.grad)
    assert abs(float(p.grad.sum(-1).abs().max())) < 1e-10  # centred


def test_wasserstein_module_buffers_and_values():
    _core("sinkhorn")
    M = _ordinal(4)
    loss_fn = WassersteinLoss(M, 0.2, n_iter=30)
    assert set(dict(loss_fn.named_buffers())) == {"M", "reg"}
    assert "M" in loss_fn.state_dict() and "reg" in loss_fn.state_dict()
    z, t = _data()
    p = torch.softmax(z, -1)
    torch.testing.assert_close(loss_fn(p, t), sinkhorn_loss(p, t, torch.as_tensor(M), 0.2, n_iter=30))
    loss_fn = loss_fn.float()
    assert loss_fn.M.dtype == torch.float32
    out = loss_fn(p.float(), t.float())
    assert out.dtype == torch.float32
    assert "reg=0.2" in repr(loss_fn)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions(reduction):
    _core("sinkhorn")
    z, t = _data(6, 3)
    p = torch.softmax(z, -1)
    M = torch.as_tensor(_ordinal(3), dtype=D)
    none = sinkhorn_loss(p, t, M, 0.2, reduction="none")
    out = sinkhorn_loss(p, t, M, 0.2, reduction=reduction)
    want = {"mean": none.mean(), "sum": none.sum(), "none": none}[reduction]
    assert none.shape == (6,)
    torch.testing.assert_close(out, want)


def test_float32_and_no_grad():
    _core("sinkhorn")
    z, t = _data(dtype=torch.float32)
    z.requires_grad_(True)
    M = torch.as_tensor(_ordinal(4))  # float64 cost follows pred's float32
    loss = sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5)
    assert loss.dtype == torch.float32 and loss.device == z.device
    loss.backward()
    assert z.grad.dtype == torch.float32
    with torch.no_grad():
        assert not sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5).requires_grad


def test_target_receives_gradient():
    _core("sinkhorn")
    z, t = _data()
    t = t.clone().requires_grad_(True)
    M = torch.as_tensor(_ordinal(4), dtype=D)
    sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5, reduction="sum").backward()
    assert t.grad is not None and t.grad.shape == t.shape


@pytest.mark.skipif(not CUDA, reason="needs torch with a CUDA device")
def test_cuda_device_follows_inputs():
    _core("sinkhorn")
    z, t = _data(dtype=torch.float32)
    z, t = z.cuda().requires_grad_(True), t.cuda()
    M = torch.as_tensor(_ordinal(4))
    loss = sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5)
    assert loss.is_cuda and loss.dtype == torch.float32
    loss.backward()
    assert z.grad.is_cuda
    for fn in (lambda p: cdf_emd_loss(p, t, rho=2), lambda p: emd_loss(p, t, M)):
        out = fn(torch.softmax(z, -1))
        assert out.is_cuda


# ----------------------------------------------------------------- exact
def test_emd_loss_value_and_gradcheck():
    _core("exact")
    ot = pytest.importorskip("ot")
    z, t = _data(3, 4, seed=2)
    M = _ordinal(4) + np.random.default_rng(1).random((4, 4)) * 0.1  # generic: unique duals
    p = torch.softmax(z, -1)
    got = emd_loss(p, t, M, reduction="none")
    want = [ot.emd2(p[i].numpy(), t[i].numpy(), M) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    z.requires_grad_(True)
    Mt = torch.as_tensor(M)
    assert torch.autograd.gradcheck(lambda z: emd_loss(torch.softmax(z, -1), t, Mt), (z,), atol=1e-5)


# ----------------------------------------------------------------- 1D and tree
@pytest.mark.parametrize("rho", [1, 2])
def test_cdf_emd_gradcheck(rho):
    _core("onedim")
    z, t = _data(4, 5, seed=3)
    z.requires_grad_(True)
    zt = torch.log(t).clone().requires_grad_(True)
    f = lambda z, zt: cdf_emd_loss(torch.softmax(z, -1), torch.softmax(zt, -1), rho=rho, reduction="sum")
    assert torch.autograd.gradcheck(f, (z, zt))


def test_cdf_emd_value_matches_scipy():
    _core("onedim")
    stats = pytest.importorskip("scipy.stats")
    z, t = _data(3, 6, seed=4)
    p = torch.softmax(z, -1)
    got = cdf_emd_loss(p, t, reduction="none")
    x = np.arange(6.0)
    want = [stats.wasserstein_distance(x, x, p[i].numpy(), t[i].numpy()) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_tree_emd_gradcheck_and_value():
    _core("tree")
    ot = pytest.importorskip("ot")
    parent = [-1, 0, 0, 1, 1, 2]
    weight = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 1.0])
    # tree (path-length) metric for the reference LP
    up = [[0], [1, 0], [2, 0], [3, 1, 0], [4, 1, 0], [5, 2, 0]]
    D_ = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            common = set(up[i]) & set(up[j])
            D_[i, j] = sum(weight[v] for v in set(up[i]) ^ set(up[j]))
            del common
    z, t = _data(3, 6, seed=5)
    p = torch.softmax(z, -1)
    got = tree_emd_loss(p, t, parent, weight, reduction="none")
    want = [ot.emd2(p[i].numpy(), t[i].numpy(), D_) for i in range(3)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-8)
    z.requires_grad_(True)
    f = lambda z: tree_emd_loss(torch.softmax(z, -1), t, parent, weight)
    assert torch.autograd.gradcheck(f, (z,))


def test_wasserstein_1d_value_and_gradcheck():
    _core("onedim")
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(6)
    u = torch.randn(2, 7, generator=g, dtype=D)
    v = torch.randn(2, 7, generator=g, dtype=D) + 0.3
    got = wasserstein_1d_loss(u, v, reduction="none")
    want = [stats.wasserstein_distance(u[i].numpy(), v[i].numpy()) for i in range(2)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    u.requires_grad_(True)
    v.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda u, v: wasserstein_1d_loss(u, v, p=2), (u, v))


# ----------------------------------------------------------------- bad input
def _bad_calls():
    M = torch.as_tensor(_ordinal(3))
    p = torch.full((2, 3), 1 / 3, dtype=D)
    return M, p


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
    M, p = _bad_calls()
    with pytest.raises(ValueError, match="pred"):
        fn(p, p[:, :2], M)  # mismatched shape
    with pytest.raises(ValueError, match="pred"):
        fn(torch.ones(2, 3, dtype=torch.int64), p, M)  # non-floating
    with pytest.raises(ValueError, match="target"):
        fn(p, torch.ones(2, 3, dtype=torch.int64), M)
    neg = p.clone()
    neg[0, 0] = -0.1
    with pytest.raises(ValueError, match="pred.*negative"):
        fn(neg, p, M)
    nan = p.clone()
    nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match="pred.*NaN"):
        fn(nan, p, M)


def test_bad_cost_and_options():
    M, p = _bad_calls()
    with pytest.raises(ValueError, match="M has shape"):
        sinkhorn_loss(p, p, M[:2], 0.1)
    with pytest.raises(ValueError, match="M has shape"):
        emd_loss(p, p, torch.ones(3, 3, 1, dtype=D))
    with pytest.raises(ValueError, match="reduction"):
        sinkhorn_loss(p, p, M, 0.1, reduction="avg")
    with pytest.raises(ValueError, match="value"):
        sinkhorn_loss(p, p, M, 0.1, value="exact")
    with pytest.raises(ValueError, match="reg"):
        sinkhorn_loss(p, p, M, -1.0)
    with pytest.raises(TypeError, match="pred"):
        sinkhorn_loss(p.numpy(), p, M, 0.1)
    with pytest.raises(ValueError, match="u_values"):
        wasserstein_1d_loss(torch.zeros(2, 3, dtype=torch.int32), p)
    with pytest.raises(ValueError, match="u_values.*NaN"):
        wasserstein_1d_loss(torch.full((2, 3), float("nan"), dtype=D), p)
    with pytest.raises(ValueError, match="M has negative costs"):
        WassersteinLoss(M - 2.0, 0.1)


def test_cdf_emd_tensor_spacing_matches_list():
    """A spacing tensor (float32, on the CPU path) gives the same loss and gradient as a list."""
    _core("onedim")
    z, t = _data(3, 4, seed=9)
    out = []
    for spacing in ([1.0, 2.0, 0.5], torch.tensor([1.0, 2.0, 0.5])):
        p = torch.softmax(z, -1).requires_grad_(True)
        loss = cdf_emd_loss(p, t, rho=2, spacing=spacing)
        loss.backward()
        out.append((loss.detach(), p.grad))
    torch.testing.assert_close(out[0], out[1])


# ----------------------------------------------------------------- CPU fast path
def test_cpu_numpy_views_match_namespace_path(monkeypatch):
    """CPU tensors reach the core as zero-copy numpy views; the array-api-compat path gives the same."""
    import otcore.torch as ott

    for name in ("sinkhorn", "exact", "onedim", "tree"):
        _core(name)
    z, t = _data(4, 5, seed=7)
    M = torch.as_tensor(_ordinal(5), dtype=D)
    fns = {
        "sinkhorn": lambda p: sinkhorn_loss(p, t, M, 0.5, value="regularized"),
        "emd": lambda p: emd_loss(p, t, M + 0.01 * torch.arange(25, dtype=D).reshape(5, 5)),
        "cdf": lambda p: cdf_emd_loss(p, t, rho=2),
        "tree": lambda p: tree_emd_loss(p, t, [-1, 0, 1, 1, 0]),
    }
    out = {}
    for views in (True, False):
        monkeypatch.setattr(ott, "_USE_VIEWS", views)
        for name, fn in fns.items():
            p = torch.softmax(z, -1).requires_grad_(True)
            loss = fn(p)
            loss.backward()
            assert loss.dtype == D and p.grad.dtype == D
            out[name, views] = (loss.detach(), p.grad)
    for name in fns:
        torch.testing.assert_close(out[name, True][0], out[name, False][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out[name, True][1], out[name, False][1], rtol=1e-8, atol=1e-10)


def test_inputs_not_modified():
    _core("sinkhorn")
    z, t = _data()
    p = torch.softmax(z, -1)
    p0, t0 = p.clone(), t.clone()
    sinkhorn_loss(p, t, _ordinal(4), 0.3)
    cdf_emd_loss(p, t)
    assert torch.equal(p, p0) and torch.equal(t, t0)


# ----------------------------------------------------------------- properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(2, 6), seed=st.integers(0, 2**16), rho=st.sampled_from([1, 2]))
def test_property_centred_gradients_and_symmetry(n, k, seed, rho):
    """Gradients sum to zero over bins; the 1D and tree losses are symmetric in (pred, target)."""
    _core("sinkhorn")
    _core("onedim")
    z, t = _data(n, k, seed=seed)
    p = torch.softmax(z, -1).requires_grad_(True)
    M = torch.as_tensor(_ordinal(k), dtype=D)
    for loss in (
        sinkhorn_loss(p, t, M, 0.5, reduction="sum"),
        cdf_emd_loss(p, t, rho=rho, reduction="sum"),
    ):
        p.grad = None
        loss.backward()
        assert float(loss.detach()) >= -1e-12
        assert float(p.grad.sum(-1).abs().max()) < 1e-9
    pd = p.detach()
    torch.testing.assert_close(cdf_emd_loss(pd, t, rho=rho), cdf_emd_loss(t, pd, rho=rho))
