"""Tests of otcore._pointcloud: the lazy point-cloud cost against dense references.

References are independent of the block code: ``scipy.spatial.distance.cdist``
for the costs, ``scipy.special.logsumexp`` on the dense matrix for the
soft-minima, plain numpy sums of the dense plan, and central finite
differences for the gradients with respect to the positions.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from otcore import PointCloud
from otcore._pointcloud import POINTCLOUD_METRICS

from tests._helpers import asxp, xp_assert_close

METRICS = list(POINTCLOUD_METRICS)


def dense_cost(x, y, metric, scale=1.0):
    y = x if y is None else y
    return scale * cdist(x, y, metric)


def clouds(rng, n, m, d=2, coincide=True):
    x = rng.random((n, d))
    y = rng.random((m, d))
    if coincide:  # coincident points across the clouds (euclidean's kink)
        y[0] = x[0]
    return x, y


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("memory", [1024, 4096, 1 << 26])  # column blocks, row blocks, one block
def test_softmin_matches_dense_logsumexp(metric, symmetric, memory, rng):
    x, y = clouds(rng, 23, 31)
    y = None if symmetric else y
    C = PointCloud(x, y, metric=metric, scale=0.7, memory=memory)
    M = dense_cost(x, y, metric, 0.7)
    n, m = M.shape
    eps = 0.03
    h = rng.standard_normal((3, m))
    h[1, :5] = -np.inf  # zero-mass bins contribute nothing
    ref = -eps * logsumexp((h[:, None, :] - M[None]) / eps, axis=2)
    np.testing.assert_allclose(C.softmin_rows(h, eps), ref, rtol=1e-12, atol=1e-13)
    hc = rng.standard_normal((3, n))
    ref = -eps * logsumexp((hc[:, :, None] - M[None]) / eps, axis=1)
    np.testing.assert_allclose(C.softmin_cols(hc, eps), ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(C.to_dense(), M, rtol=1e-12, atol=1e-13)


def test_softmin_all_minus_inf_gives_inf_without_warning(rng):
    x, y = clouds(rng, 5, 7)
    C = PointCloud(x, y, memory=1024)
    h = np.full((2, 7), -np.inf)
    h[1, 3] = 0.0
    with np.errstate(all="raise"):
        out = C.softmin_rows(h, 0.01)
    assert np.all(np.isinf(out[0])) and np.all(out[0] > 0)
    assert np.all(np.isfinite(out[1]))


@pytest.mark.parametrize("metric", METRICS)
def test_softmin_float32(metric, rng):
    x, y = clouds(rng, 17, 13)
    C = PointCloud(x.astype(np.float32), y.astype(np.float32), metric=metric)
    assert C.dtype == np.float32
    h = rng.standard_normal((1, 13)).astype(np.float32)
    out = C.softmin_rows(h, 0.05)
    assert out.dtype == np.float32
    M = dense_cost(x, y, metric)
    ref = -0.05 * logsumexp((h.astype(np.float64)[:, None, :] - M[None]) / 0.05, axis=2)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_reductions_match_dense_plan(metric, rng):
    x, y = clouds(rng, 19, 11)
    C = PointCloud(x, y, metric=metric, memory=1024)
    M = dense_cost(x, y, metric)
    eps = 0.1
    f = rng.standard_normal((2, 19)) * 0.1
    g = rng.standard_normal((2, 11)) * 0.1
    f[0, 2] = -np.inf  # a zero-mass row
    P = np.exp((f[:, :, None] + g[:, None, :] - M) / eps)
    np.testing.assert_allclose(C.transport_cost(f, g, eps), (P * M).sum((1, 2)), rtol=1e-12)
    r, c = C.marginals(f, g, eps)
    np.testing.assert_allclose(r, P.sum(2), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(c, P.sum(1), rtol=1e-12)
    np.testing.assert_allclose(PointCloud(x, y, metric=metric).plan(f, g, eps), P, rtol=1e-12, atol=1e-300)


def test_plan_refused_beyond_memory_with_the_bytes_needed(rng):
    x, y = clouds(rng, 300, 200)
    C = PointCloud(x, y, memory=100_000)
    with pytest.raises(ValueError, match=r"needs 468\.8 KiB .*1 x 300 x 200"):
        C.plan(np.zeros(300), np.zeros(200), 0.1)


def test_namespaces(xp, rng):
    x, y = clouds(rng, 12, 9)
    h = rng.standard_normal((2, 9))
    f, g = rng.standard_normal((2, 12)) * 0.1, rng.standard_normal((2, 9)) * 0.1
    for metric in METRICS:
        ref = PointCloud(x, y, metric=metric)
        C = PointCloud(asxp(xp, x), asxp(xp, y), metric=metric, memory=1024)
        xp_assert_close(C.softmin_rows(asxp(xp, h), 0.1), ref.softmin_rows(h, 0.1), xp=xp, rtol=1e-12)
        xp_assert_close(C.softmin_cols(asxp(xp, f), 0.1), ref.softmin_cols(f, 0.1), xp=xp, rtol=1e-12)
        xp_assert_close(C.transport_cost(asxp(xp, f), asxp(xp, g), 0.1), ref.transport_cost(f, g, 0.1), xp=xp, rtol=1e-12)
        gx, gy = C.position_grads(asxp(xp, f), asxp(xp, g), 0.1)
        rx, ry = ref.position_grads(f, g, 0.1)
        xp_assert_close(gx, rx, xp=xp, rtol=1e-11, atol=1e-14)
        xp_assert_close(gy, ry, xp=xp, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("symmetric", [False, True])
def test_position_grads_finite_differences(metric, symmetric, rng):
    """sum_j P_ij dM(x_i, y_j)/dx_i with P held fixed = d<P, M(x, y)>/dx."""
    x, y = clouds(rng, 6, 5, d=3, coincide=False)
    y = None if symmetric else y
    C = PointCloud(x, y, metric=metric, scale=0.5, memory=1024)
    n, m = C.shape
    eps = 0.2
    f, g = rng.standard_normal(n) * 0.05, rng.standard_normal(m) * 0.05
    P = np.exp((f[:, None] + g[None, :] - dense_cost(x, y, metric, 0.5)) / eps)
    gx, gy = C.position_grads(f, g, eps)

    def val(xx, yy):
        return (P * dense_cost(xx, yy, metric, 0.5)).sum()

    h = 1e-6
    yy = x if y is None else y
    num_x, num_y = np.zeros_like(x), np.zeros_like(yy)
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            e = np.zeros_like(x)
            e[i, k] = h
            num_x[i, k] = (val(x + e, yy) - val(x - e, yy)) / (2 * h)
    for j in range(yy.shape[0]):
        for k in range(yy.shape[1]):
            e = np.zeros_like(yy)
            e[j, k] = h
            num_y[j, k] = (val(x, yy + e) - val(x, yy - e)) / (2 * h)
    if symmetric:  # one set of points in both arguments: the two partial gradients add
        fd = np.zeros_like(x)
        for i in range(x.shape[0]):
            for k in range(x.shape[1]):
                e = np.zeros_like(x)
                e[i, k] = h
                fd[i, k] = (val(x + e, x + e) - val(x - e, x - e)) / (2 * h)
        np.testing.assert_allclose(gx[0] + gy[0], fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gx[0], num_x, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gy[0], num_y, rtol=1e-6, atol=1e-7)


def test_euclidean_gradient_finite_at_coincident_points(rng):
    x = rng.random((4, 2))
    C = PointCloud(x, x.copy(), metric="euclidean")
    gx, gy = C.position_grads(np.zeros(4), np.zeros(4), 0.1)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 9),
    m=st.integers(1, 9),
    d=st.integers(1, 3),
    metric=st.sampled_from(METRICS),
    offset=st.sampled_from([0.0, 1e3, -1e6]),
    spread=st.sampled_from([1e-6, 1.0, 1e3]),
    log_eps=st.floats(-3, 2),
    seed=st.integers(0, 2**16),
)
def test_softmin_hypothesis(n, m, d, metric, offset, spread, log_eps, seed):
    """Ugly clouds (large offsets, tiny and huge spreads, ties) against the dense log-sum-exp."""
    r = np.random.default_rng(seed)
    x = offset + spread * np.round(r.random((n, d)), 1)  # rounding makes ties
    y = offset + spread * np.round(r.random((m, d)), 1)
    C = PointCloud(x, y, metric=metric, memory=1024)
    M = dense_cost(x, y, metric)
    scale = max(1.0, float(M.max()))
    eps = 10.0**log_eps * scale
    h = r.standard_normal((2, m)) * scale
    ref = -eps * logsumexp((h[:, None, :] - M[None]) / eps, axis=2)
    # the GEMM expansion of sqeuclidean (as in otcore.cost_matrix) is exact to
    # about 1e-16 * (|x - c|^2 + |y - c|^2) per cost, c the clouds' centre
    tol = 1e-12 * scale + 1e-15 * float(((x - x.mean(0)) ** 2).sum(1).max() + ((y - y.mean(0)) ** 2).sum(1).max())
    np.testing.assert_allclose(C.softmin_rows(h, eps), ref, rtol=1e-12, atol=10 * tol)


def test_validation(rng):
    x, y = clouds(rng, 4, 3)
    with pytest.raises(ValueError, match="metric"):
        PointCloud(x, y, metric="cosine")
    with pytest.raises(ValueError, match="same number of features"):
        PointCloud(x, y[:, :1])
    with pytest.raises(ValueError, match="scale must be > 0"):
        PointCloud(x, y, scale=0.0)
    with pytest.raises(ValueError, match="memory must be >= 1024"):
        PointCloud(x, y, memory=10)
    with pytest.raises(ValueError, match="finite|NaN|inf"):
        PointCloud(np.array([[np.nan, 0.0]]), y)
    C = PointCloud(x, y)
    with pytest.raises(ValueError, match=r"h must have shape \(N, 3\)"):
        C.softmin_rows(np.zeros((1, 4)), 0.1)


def test_cost_range_bounds_the_costs(rng):
    for metric in METRICS:
        x, y = clouds(rng, 30, 20)
        M = dense_cost(x, y, metric, 2.0)
        r = PointCloud(x, y, metric=metric, scale=2.0).cost_range()
        assert M.max() - M.min() <= r * (1 + 1e-12)
        assert r <= 4 * (M.max() - M.min())  # a bound, but not a loose one on such clouds


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import tracemalloc, sys
    import numpy as np
    from otcore import PointCloud
    n = m = {n}
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 2)), rng.random((m, 2))
    f, g = rng.standard_normal(n) * 0.01, rng.standard_normal(m) * 0.01
    C = PointCloud(x, y, metric="{metric}", memory=4 * 2**20)
    tracemalloc.start()
    C.softmin_rows(g[None], 0.01)
    C.softmin_cols(f[None], 0.01)
    C.transport_cost(f, g, 0.01)
    C.marginals(f, g, 0.01)
    C.position_grads(f, g, 0.01)
    print(tracemalloc.get_traced_memory()[1])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
def test_memory_bounded(metric):
    """Peak memory of every block reduction stays far below one n x m matrix."""
    n = 2500
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT.format(n=n, metric=metric)],
        capture_output=True, text=True, check=True,
    )
    peak = int(out.stdout.split()[-1])
    dense = n * n * 8
    assert peak < dense / 4, f"peak {peak} bytes vs one n x m matrix {dense} bytes"


# -- through the Sinkhorn engine -----------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("memory", [1 << 14, 1 << 26])  # streamed every half-step / built once
def test_sinkhorn_lazy_equals_dense(metric, memory, rng):
    from otcore import sinkhorn

    x, y = clouds(rng, 40, 30)
    a = rng.random(40) + 0.1
    a /= a.sum()
    b = rng.random(30) + 0.1
    b /= b.sum()
    b[3] = 0.0  # a zero-mass bin
    b /= b.sum()
    M = dense_cost(x, y, metric)
    lazy = sinkhorn(a, b, PointCloud(x, y, metric=metric, memory=memory), 0.02)
    dense = sinkhorn(a, b, M, 0.02)
    assert lazy.converged
    np.testing.assert_allclose(lazy.cost, dense.cost, rtol=1e-9)
    np.testing.assert_allclose(lazy.reg_cost, dense.reg_cost, rtol=1e-9)
    np.testing.assert_allclose(lazy.f, dense.f, atol=1e-9)
    if memory > 1 << 14:
        np.testing.assert_allclose(lazy.plan, dense.plan, atol=1e-12)


def test_sinkhorn_batched_and_torch(rng):
    torch = pytest.importorskip("torch")
    from otcore import sinkhorn

    x, y = clouds(rng, 25, 20)
    A = rng.random((3, 25)) + 0.1
    A /= A.sum(1, keepdims=True)
    C = PointCloud(x, y, memory=1 << 13)
    res = sinkhorn(A, None, C, 0.05)
    ref = sinkhorn(A, np.full(20, 1 / 20), dense_cost(x, y, "sqeuclidean"), 0.05)
    np.testing.assert_allclose(res.cost, ref.cost, rtol=1e-9)
    Ct = PointCloud(torch.tensor(x), torch.tensor(y), memory=1 << 13)
    rt = sinkhorn(torch.tensor(A), None, Ct, 0.05)
    assert isinstance(rt.cost, torch.Tensor)
    np.testing.assert_allclose(rt.cost.numpy(), ref.cost, rtol=1e-9)


def test_result_plan_refused_beyond_memory(rng):
    from otcore import sinkhorn

    x, y = clouds(rng, 60, 50)
    res = sinkhorn(None, None, PointCloud(x, y, memory=4096), 0.1)
    with pytest.raises(ValueError, match="needs .* more than its memory budget"):
        res.plan


def test_pairwise_distances_with_pointcloud(rng):
    from otcore import pairwise_distances

    x, y = clouds(rng, 30, 20)
    A = rng.random((3, 30))
    A /= A.sum(1, keepdims=True)
    B = rng.random((2, 20))
    B /= B.sum(1, keepdims=True)
    D = pairwise_distances(A, B, PointCloud(x, y, memory=1 << 13), method="sinkhorn", reg=0.05)
    ref = pairwise_distances(A, B, dense_cost(x, y, "sqeuclidean"), method="sinkhorn", reg=0.05)
    np.testing.assert_allclose(D, ref, rtol=1e-9)
    with pytest.raises(ValueError, match="method='sinkhorn' only"):
        pairwise_distances(A, B, PointCloud(x, y), method="exact")
