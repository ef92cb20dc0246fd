"""Tests of otcore._divergence: the Sinkhorn divergence against GeomLoss, its properties, gradients.

References: GeomLoss ``SamplesLoss("sinkhorn", p=2, debias=True)`` (tensorized,
eps-scaling factor 0.999 so that its annealed potentials are converged), an
independent numpy log-domain Sinkhorn for the entropic OT values, and finite
differences for the gradients with respect to weights and positions.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from otcore import PointCloud, sinkhorn_divergence, sinkhorn_divergence_value_and_grad


def half_sq(u, v):
    return 0.5 * cdist(u, v, "sqeuclidean")


def ot_rel(a, b, C, eps, iters=1500):
    """OT_eps with the entropy relative to a (x) b: a plain symmetric-free log-domain loop."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    la, lb = np.log(a), np.log(b)
    for _ in range(iters):
        f = -eps * logsumexp((g[None, :] - C) / eps + lb[None, :], axis=1)
        g = -eps * logsumexp((f[:, None] - C) / eps + la[:, None], axis=0)
    return a @ f + b @ g


def weights(rng, k):
    w = rng.random(k) + 0.1
    return w / w.sum()


def test_equals_independent_formula(rng):
    x, y = rng.random((9, 2)), rng.random((7, 2)) + 0.2
    a, b = weights(rng, 9), weights(rng, 7)
    eps = 0.1
    ref = ot_rel(a, b, half_sq(x, y), eps) - 0.5 * ot_rel(a, a, half_sq(x, x), eps) - 0.5 * ot_rel(b, b, half_sq(y, y), eps)
    lazy = sinkhorn_divergence(a, b, PointCloud(x, y, scale=0.5, memory=1024), eps)
    dense = sinkhorn_divergence(a, b, (half_sq(x, y), half_sq(x, x), half_sq(y, y)), eps)
    np.testing.assert_allclose(lazy, ref, rtol=1e-9)
    np.testing.assert_allclose(dense, lazy, rtol=1e-9)


@pytest.mark.parametrize("blur", [0.1, 0.2, 0.5])
def test_equals_geomloss(blur, rng):
    torch = pytest.importorskip("torch")
    geomloss = pytest.importorskip("geomloss")
    x, y = rng.random((30, 2)), rng.random((25, 2)) * 0.8 + 0.3
    a, b = weights(rng, 30), weights(rng, 25)
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=blur, debias=True, scaling=0.999, backend="tensorized")
    ref = loss(*(torch.tensor(v, dtype=torch.float64) for v in (a, x, b, y))).item()
    ours = sinkhorn_divergence(a, b, PointCloud(x, y, scale=0.5), blur**2)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 7),
    m=st.integers(1, 7),
    eps=st.sampled_from([0.01, 0.1, 1.0]),
    metric=st.sampled_from(["sqeuclidean", "euclidean"]),
    seed=st.integers(0, 2**16),
)
def test_properties(n, m, eps, metric, seed):
    """Symmetric, zero on equal measures, positive (positive-definite kernels)."""
    rng = np.random.default_rng(seed)
    x, y = np.round(rng.random((n, 2)), 1), np.round(rng.random((m, 2)), 1)  # ties and duplicates
    a, b = weights(rng, n), weights(rng, m)
    s_ab = float(sinkhorn_divergence(a, b, PointCloud(x, y, metric=metric), eps))
    s_ba = float(sinkhorn_divergence(b, a, PointCloud(y, x, metric=metric), eps))
    s_aa = float(sinkhorn_divergence(a, a, PointCloud(x, x.copy(), metric=metric), eps))
    scale = max(1.0, float(cdist(x, y).max()) ** 2)
    assert abs(s_ab - s_ba) <= 1e-8 * scale
    assert abs(s_aa) <= 1e-8 * scale
    assert s_ab >= -1e-8 * scale


def test_batched(rng):
    x, y = rng.random((6, 2)), rng.random((5, 2))
    A = np.stack([weights(rng, 6) for _ in range(3)])
    b = weights(rng, 5)
    C = PointCloud(x, y)
    vals, (da, db, dx, dy) = sinkhorn_divergence_value_and_grad(A, b, C, 0.1)
    assert vals.shape == (3,) and da.shape == (3, 6) and db.shape == (3, 5)
    assert dx.shape == (3, 6, 2) and dy.shape == (3, 5, 2)
    for k in range(3):
        v, (dak, _, dxk, _) = sinkhorn_divergence_value_and_grad(A[k], b, C, 0.1)
        np.testing.assert_allclose(vals[k], v, rtol=1e-10)
        np.testing.assert_allclose(dx[k], dxk, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cityblock"])
def test_gradients_finite_differences(metric, rng):
    x, y = rng.random((5, 2)), rng.random((4, 2)) + 0.1
    a, b = weights(rng, 5), weights(rng, 4)
    eps, h = 0.1, 1e-6
    kw = dict(tol=1e-13)
    _, (da, db, dx, dy) = sinkhorn_divergence_value_and_grad(a, b, PointCloud(x, y, metric=metric), eps, **kw)

    def S(a_, b_, x_, y_):
        return float(sinkhorn_divergence(a_, b_, PointCloud(x_, y_, metric=metric), eps, **kw))

    for i in range(4):  # weights: along zero-sum directions (equal masses)
        e = np.zeros(5)
        e[i], e[4] = h, -h
        fd = (S(a + e, b, x, y) - S(a - e, b, x, y)) / (2 * h)
        np.testing.assert_allclose(da[i] - da[4], fd, rtol=1e-5, atol=1e-8)
        e = np.zeros(4)
        e[i % 3], e[3] = h, -h
        fd = (S(a, b + e, x, y) - S(a, b - e, x, y)) / (2 * h)
        np.testing.assert_allclose(db[i % 3] - db[3], fd, rtol=1e-5, atol=1e-8)
    for i in range(5):  # positions
        for k in range(2):
            e = np.zeros_like(x)
            e[i, k] = h
            fd = (S(a, b, x + e, y) - S(a, b, x - e, y)) / (2 * h)
            np.testing.assert_allclose(dx[i, k], fd, rtol=1e-5, atol=1e-8)
    for j in range(4):
        e = np.zeros_like(y)
        e[j, 0] = h
        fd = (S(a, b, x, y + e) - S(a, b, x, y - e)) / (2 * h)
        np.testing.assert_allclose(dy[j, 0], fd, rtol=1e-5, atol=1e-8)


def test_symmetric_cloud_gradient(rng):
    """PointCloud(x): a and b on the same points; d_x moves every term."""
    x = rng.random((5, 2))
    a, b = weights(rng, 5), weights(rng, 5)
    _, (_, _, dx, dy) = sinkhorn_divergence_value_and_grad(a, b, PointCloud(x), 0.1, tol=1e-13)
    assert dy is None
    h = 1e-6
    for i in range(5):
        e = np.zeros_like(x)
        e[i, 1] = h
        fd = (sinkhorn_divergence(a, b, PointCloud(x + e), 0.1, tol=1e-13)
              - sinkhorn_divergence(a, b, PointCloud(x - e), 0.1, tol=1e-13)) / (2 * h)
        np.testing.assert_allclose(dx[i, 1], fd, rtol=1e-5, atol=1e-8)


def test_bad_cost_argument(rng):
    with pytest.raises(TypeError, match="PointCloud or a tuple"):
        sinkhorn_divergence(weights(rng, 3), weights(rng, 3), np.ones((3, 3)), 0.1)


def test_point_flow_example_decreases_the_divergence(tmp_path):
    """examples/point_flow.py (tiny): the flow lowers the divergence and writes its figure."""
    pytest.importorskip("matplotlib")
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "point_flow.py")
    spec = importlib.util.spec_from_file_location("_example_point_flow", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--n", "40", "--steps", "6", "--quiet", "--out", str(tmp_path)])
    assert os.path.getsize(res["files"][0]) > 0
    assert res["values"][-1] < 0.2 * res["values"][0]


def test_position_gradients_match_geomloss_autograd(rng):
    """d_x, d_y against torch autograd through GeomLoss (its potentials come from the last
    eps-scaling step, converged to about 1e-4 relative at blur 0.2)."""
    torch = pytest.importorskip("torch")
    geomloss = pytest.importorskip("geomloss")
    x, y = rng.random((30, 2)), rng.random((25, 2)) * 0.8 + 0.3
    a, b = weights(rng, 30), weights(rng, 25)
    X = torch.tensor(x, requires_grad=True)
    Y = torch.tensor(y, requires_grad=True)
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=0.2, debias=True, scaling=0.9999, backend="tensorized")
    loss(torch.tensor(a), X, torch.tensor(b), Y).backward()
    _, (_, _, dx, dy) = sinkhorn_divergence_value_and_grad(a, b, PointCloud(x, y, scale=0.5), 0.04)
    np.testing.assert_allclose(dx, X.grad.numpy(), rtol=0, atol=5e-4 * np.abs(dx).max())
    np.testing.assert_allclose(dy, Y.grad.numpy(), rtol=0, atol=5e-4 * np.abs(dy).max())
