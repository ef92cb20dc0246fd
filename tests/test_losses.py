"""otcore._losses: the values and gradients behind the adapters, against POT's autograd and finite differences."""

import numpy as np
import pytest

from otcore._losses import (
    cdf_emd_loss_grads,
    emd_loss_grads,
    sinkhorn_implicit_grads,
    sinkhorn_loss_grads,
    sinkhorn_method,
    tree_emd_loss_grads,
)
from otcore._sinkhorn import sinkhorn

CONVERGED = {"n_iter": 100000, "tol": 1e-15}


def _problem(seed, n, m, zeros_b=0):
    rng = np.random.default_rng(seed)
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    if zeros_b:
        b[rng.choice(m, zeros_b, replace=False)] = 0.0
    return a / a.sum(), b / b.sum(), rng.random((n, m)) * rng.choice([0.5, 2.0, 7.0])


def _fd(fun, x, h=1e-6, directions=None):
    """Central differences of ``fun`` at ``x`` along the unit directions (or the given ones)."""
    if directions is None:
        directions = np.eye(x.size).reshape((x.size,) + x.shape)
    return np.array([(fun(x + h * d) - fun(x - h * d)) / (2 * h) for d in directions])


def _zero_sum(rng, n, k=3):
    d = rng.normal(size=(k, n))
    return d - d.mean(-1, keepdims=True)


@pytest.mark.parametrize("seed,n,m,reg", [(0, 4, 3, 0.3), (1, 6, 6, 1.0), (2, 2, 5, 0.05), (3, 1, 4, 0.5)])
def test_implicit_sinkhorn_gradients_match_finite_differences(seed, n, m, reg):
    a, b, M = _problem(seed, n, m)
    reg = reg * M.max()
    kw = dict(reg=reg, grad="implicit", **CONVERGED)
    _, (d_a, d_b, d_M) = sinkhorn_loss_grads(a, b, M, **kw)

    def val(a_, b_, M_):
        return float(sinkhorn_loss_grads(a_, b_, M_, (False, False, False), **kw)[0])

    fd_M = _fd(lambda X: val(a, b, X), M).reshape(M.shape)
    np.testing.assert_allclose(d_M, fd_M, rtol=1e-6, atol=1e-8 * np.abs(fd_M).max())
    rng = np.random.default_rng(seed)
    da_dirs, db_dirs = _zero_sum(rng, n), _zero_sum(rng, m)
    np.testing.assert_allclose(da_dirs @ d_a, _fd(lambda x: val(x, b, M), a, directions=da_dirs), atol=1e-7)
    np.testing.assert_allclose(db_dirs @ d_b, _fd(lambda x: val(a, x, M), b, directions=db_dirs), atol=1e-7)
    assert abs(d_a.sum()) < 1e-12 and abs(d_b.sum()) < 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_implicit_sinkhorn_gradients_match_pot_autograd(seed):
    """POT differentiates through the (converged) iterations of ot.sinkhorn2: same gradient to 1e-8."""
    torch = pytest.importorskip("torch")
    ot = pytest.importorskip("ot")
    a, b, M = _problem(seed, 5, 4)
    reg = 0.2 * M.max()
    at, bt, Mt = (torch.tensor(x, requires_grad=True) for x in (a, b, M))
    ot.sinkhorn2(at, bt, Mt, reg, numItermax=100000, stopThr=1e-15).backward()
    value, (d_a, d_b, d_M) = sinkhorn_loss_grads(a, b, M, reg=reg, grad="implicit", **CONVERGED)

    def centred(g):
        g = g.numpy()
        return g - g.mean()

    np.testing.assert_allclose(d_M, Mt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(d_a, centred(at.grad), rtol=1e-8, atol=1e-10 * np.abs(d_a).max())
    np.testing.assert_allclose(d_b, centred(bt.grad), rtol=1e-8, atol=1e-10 * np.abs(d_b).max())


def test_implicit_gradient_at_a_zero_mass_bin_is_the_one_sided_limit():
    a, b, M = _problem(7, 5, 4, zeros_b=1)
    j = int(np.flatnonzero(b == 0)[0])
    kw = dict(reg=0.4, grad="implicit", **CONVERGED)
    _, (d_a, d_b, d_M) = sinkhorn_loss_grads(a, b, M, **kw)
    assert np.all(np.isfinite(d_b)) and np.all(d_M[:, j] == 0)
    e = -b.copy()
    e[j] += 1.0  # move mass into bin j, total kept

    def val(t):
        return float(sinkhorn_loss_grads(a, b + t * e, M, (False, False, False), **kw)[0])

    h = 1e-7
    one_sided = (val(h) - val(0.0)) / h
    assert one_sided == pytest.approx(float(d_b @ e), rel=1e-4)


def test_regularized_gradients_are_potentials_and_plan():
    a, b, M = _problem(4, 4, 5)
    _, (d_a, d_b, d_M) = sinkhorn_loss_grads(a, b, M, reg=0.5, value="regularized", **CONVERGED)
    res = sinkhorn(a, b, M, 0.5, **CONVERGED)
    np.testing.assert_allclose(d_M, res.plan, rtol=1e-12)
    np.testing.assert_allclose(d_a, res.f - res.f.mean(), rtol=1e-12)

    def val(X):
        return float(sinkhorn(a, b, X, 0.5, **CONVERGED).reg_cost)

    np.testing.assert_allclose(d_M, _fd(val, M).reshape(M.shape), rtol=1e-6, atol=1e-9)


def test_frogner_default_keeps_frogner_for_histograms_and_exact_for_cost():
    a, b, M = _problem(5, 4, 4)
    _, (fa, fb, fM) = sinkhorn_loss_grads(a, b, M, reg=0.3, **CONVERGED)
    _, (ia, ib, iM) = sinkhorn_loss_grads(a, b, M, reg=0.3, grad="implicit", **CONVERGED)
    res = sinkhorn(a, b, M, 0.3, **CONVERGED)
    np.testing.assert_allclose(fa, res.grad)
    np.testing.assert_allclose(fM, iM)
    assert np.abs(fa - ia).max() > 1e-3  # the surrogate differs from the exact gradient
    none = sinkhorn_loss_grads(a, b, M, (False, False, False), reg=0.3, n_iter=50)[1]
    assert none == (None, None, None)


def test_batched_implicit_gradients_equal_per_pair():
    rng = np.random.default_rng(8)
    A = rng.random((3, 4)) + 0.05
    B = rng.random((3, 5)) + 0.05
    A /= A.sum(-1, keepdims=True)
    B /= B.sum(-1, keepdims=True)
    B[1, 2] = 0.0
    B[1] /= B[1].sum()
    M = rng.random((4, 5))
    res = sinkhorn(A, B, M, 0.3, **CONVERGED)
    got = sinkhorn_implicit_grads(res, A, B, M)
    for k in range(3):
        want = sinkhorn_implicit_grads(sinkhorn(A[k], B[k], M, 0.3, **CONVERGED), A[k], B[k], M)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g[k], w, rtol=1e-9, atol=1e-13)


def test_emd_gradients_are_centred_duals_and_plan_as_pot():
    torch = pytest.importorskip("torch")
    ot = pytest.importorskip("ot")
    a, b, M = _problem(9, 6, 5)
    at, bt, Mt = (torch.tensor(x, requires_grad=True) for x in (a, b, M))
    ot.emd2(at, bt, Mt).backward()
    value, (d_a, d_b, d_M) = emd_loss_grads(a, b, M)
    np.testing.assert_allclose(d_M, Mt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(d_a, at.grad.numpy() - at.grad.numpy().mean(), atol=1e-9)
    np.testing.assert_allclose(d_b, bt.grad.numpy() - bt.grad.numpy().mean(), atol=1e-9)


def test_closed_forms_refuse_gradients_they_do_not_have():
    a = np.array([0.5, 0.5, 0.0])
    b = np.array([0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="spacing receives no gradient"):
        cdf_emd_loss_grads(a, b, np.ones(2), (True, False, True))
    with pytest.raises(ValueError, match="receives no gradient"):
        tree_emd_loss_grads(a, b, None, (True, False, True), parent=[-1, 0, 0])
    value, (ga, gb, gt) = cdf_emd_loss_grads(a, b, np.array([1.0, 2.0]), (True, True, False))
    assert float(value) == pytest.approx(1.5) and gt is None
    np.testing.assert_allclose(ga, -gb)


def test_sinkhorn_method_follows_the_core_rule():
    M = 1.0 - np.eye(4)
    assert sinkhorn_method(M, 0.1) == "scaling"
    assert sinkhorn_method(M, 1e-3) == "log"
    assert sinkhorn_method(M.astype(np.float32), 0.01) == "log"  # float32: smaller ratio
    assert sinkhorn_method(np.array([[np.nan]]), 0.1) == "auto"
