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
    with pytest.raises(ValueError, match="M is on cpu but pred is on cuda"):
        sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5)
    M = M.cuda().requires_grad_(True)
    loss = sinkhorn_loss(torch.softmax(z, -1), t, M, 0.5)
    assert loss.is_cuda and loss.dtype == torch.float32
    loss.backward()
    assert z.grad.is_cuda and M.grad.is_cuda and bool(torch.all(torch.isfinite(M.grad)))
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
    with pytest.raises(ValueError, match="(?i)pred.*nan"):
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


# ----------------------------------------------------------------- gradients w.r.t. the cost and points
def _points(seed=0, n=5, m=4, d=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d))


def _hists(seed, n, m):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    return torch.tensor(a / a.sum()), torch.tensor(b / b.sum())


CONV = {"n_iter": 20000, "tol": 1e-14}


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
def test_gradcheck_wrt_cost_and_points(loss):
    _core("sinkhorn")
    from otcore import cost_matrix

    a, b = _hists(1, 5, 4)
    x, y = _points(1)
    M = torch.tensor(np.random.default_rng(3).random((5, 4)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda M: loss(a, b, M), (M,), atol=1e-6, rtol=1e-5)
    xt = torch.tensor(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: loss(a, b, cost_matrix(x, torch.tensor(y))), (xt,), atol=1e-6)


def test_cost_gradient_batched_and_per_sample():
    """A cost shared by a batch: its gradient sums the pairs' (reduction none contracts with grad_output)."""
    _core("sinkhorn")
    z, t = _data(4, 3, seed=4)
    p = torch.softmax(z, -1)
    M = torch.tensor(np.random.default_rng(4).random((3, 3)), requires_grad=True)  # generic: unique plans
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=D)
    for fn in (
        lambda M: emd_loss(p, t, M, reduction="none"),
        lambda M: sinkhorn_loss(p, t, M, 0.3, reduction="none", **CONV),
    ):
        (fn(M) * w).sum().backward()
        g_batch = M.grad.clone()
        M.grad = None
        want = sum(w[i] * torch.autograd.grad(fn(M)[i], M)[0] for i in range(4))
        torch.testing.assert_close(g_batch, want)
        assert torch.autograd.gradcheck(lambda M: fn(M), (M,), atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_points_through_cost_matrix_match_pot(seed):
    """Points -> otcore.cost_matrix -> loss: the gradient of POT's ot.emd2 / ot.sinkhorn2 (autograd)."""
    ot = pytest.importorskip("ot")
    from otcore import cost_matrix

    a, b = _hists(seed, 5, 4)
    x, y = _points(seed)
    yt = torch.tensor(y)
    cases = [
        (lambda M: ot.emd2(a, b, M), lambda M: emd_loss(a, b, M)),
        (
            lambda M: ot.sinkhorn2(a, b, M, 1.0, numItermax=100000, stopThr=1e-15),
            lambda M: sinkhorn_loss(a, b, M, 1.0, n_iter=100000, tol=1e-15),
        ),
    ]
    for ref_fn, fn in cases:
        xr = torch.tensor(x, requires_grad=True)
        ref_fn(ot.dist(xr, yt)).backward()
        xo = torch.tensor(x, requires_grad=True)
        fn(cost_matrix(xo, yt)).backward()
        np.testing.assert_allclose(xo.grad.numpy(), xr.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_implicit_gradient_matches_pot_for_histograms():
    ot = pytest.importorskip("ot")
    a, b = _hists(5, 5, 4)
    M = torch.tensor(np.random.default_rng(5).random((5, 4)))
    ar, br = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    ot.sinkhorn2(ar, br, M, 0.3, numItermax=100000, stopThr=1e-15).backward()
    ao, bo = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    sinkhorn_loss(ao, bo, M, 0.3, n_iter=100000, tol=1e-15, grad="implicit").backward()
    for got, ref in ((ao.grad, ar.grad), (bo.grad, br.grad)):
        np.testing.assert_allclose(got.numpy(), (ref - ref.mean()).numpy(), rtol=1e-8, atol=1e-11)


def test_no_silent_missing_gradients():
    """Inputs without a gradient raise instead of getting None or zeros."""
    p = torch.tensor([[0.2, 0.3, 0.5]], dtype=D)
    with pytest.raises(ValueError, match="spacing receives no gradient"):
        cdf_emd_loss(p, p, spacing=torch.ones(2, dtype=D, requires_grad=True))
    with pytest.raises(ValueError, match="weight requires grad"):
        tree_emd_loss(p, p, [-1, 0, 0], torch.ones(3, dtype=D, requires_grad=True))
    with pytest.raises(ValueError, match="grad"):
        sinkhorn_loss(p, p, 1.0 - torch.eye(3, dtype=D), 0.1, grad="exact")


def test_wasserstein_1d_gradcheck_positions_and_weights():
    u = torch.tensor(np.random.default_rng(0).normal(size=(2, 5)), requires_grad=True)
    v = torch.tensor(np.random.default_rng(1).normal(size=(2, 4)), requires_grad=True)
    wu = torch.tensor(np.random.default_rng(2).random((2, 5)) + 0.1, requires_grad=True)
    wv = torch.tensor(np.random.default_rng(3).random((2, 4)) + 0.1, requires_grad=True)
    for p in (1, 2):
        assert torch.autograd.gradcheck(lambda *a: wasserstein_1d_loss(*a, p=p), (u, v, wu, wv), atol=1e-6)


# ----------------------------------------------------------------- dtype / device contract
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_cast_back(dtype):
    z, t = _data(8, 10, seed=6, dtype=torch.float32)
    M = torch.as_tensor(_ordinal(10), dtype=torch.float32)
    p = torch.softmax(z, -1).to(dtype).requires_grad_(True)
    th = t.to(dtype)
    for fn in (
        lambda p, t: sinkhorn_loss(p, t, M, 1.0),
        lambda p, t: emd_loss(p, t, M),
        lambda p, t: cdf_emd_loss(p, t, rho=2),
        lambda p, t: tree_emd_loss(p, t, [-1] + list(range(9))),
    ):
        loss = fn(p, th)
        assert loss.dtype == dtype
        p32, t32 = p.detach().float(), th.float()
        want = fn(p32, t32 * (p32.sum(-1, keepdim=True) / t32.sum(-1, keepdim=True)))
        assert float(loss.detach()) == pytest.approx(float(want.to(dtype)), rel=1e-6)
        loss.backward()
        assert p.grad.dtype == dtype and bool(torch.isfinite(p.grad).all())
        p.grad = None
    with pytest.raises(ValueError, match="same total mass.*float16/bfloat16"):
        sinkhorn_loss(p, th * 1.1, M, 1.0)


def test_device_mismatch_raises():
    p = torch.tensor([[0.2, 0.3, 0.5]], dtype=D)
    meta = torch.empty(1, 3, dtype=D, device="meta")
    M = 1.0 - torch.eye(3, dtype=D)
    with pytest.raises(ValueError, match="target is on meta but pred is on cpu"):
        sinkhorn_loss(p, meta, M, 0.1)
    with pytest.raises(ValueError, match="M is on meta but pred is on cpu"):
        emd_loss(p, p, M.to("meta"))
    with pytest.raises(ValueError, match="v_values is on meta"):
        wasserstein_1d_loss(p, meta)
