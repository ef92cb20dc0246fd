"""Tests of otcore._pairwise: every method against a per-pair loop of the reference (POT or
the closed form), chunking invariants, namespaces, bad input, and dask on a local cluster."""

import importlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otcore._pairwise import _pair_chunks, pairwise_distances
from tests._helpers import asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)


def _line_cost(k, p=1.0):
    x = np.arange(k, dtype=np.float64)
    return np.abs(x[:, None] - x[None, :]) ** p


def _loop(A, B, f):
    return np.array([[f(a, b) for b in B] for a in A])


@pytest.fixture
def data(rng):
    A = random_histograms(rng, (9, 6))
    B = random_histograms(rng, (5, 6))
    return A, B, _line_cost(6)


# --------------------------------------------------------------------------------------
# values against per-pair references


@pytest.mark.parametrize("chunk_size", [None, 1, 4, 1000])
@pytest.mark.parametrize("method", ["exact", "cdf", "1d"])
def test_line_methods_match_pot_loop(data, method, chunk_size):
    A, B, M = data
    cost = M if method == "exact" else None
    ref = _loop(A, B, lambda a, b: ot.emd2(a, b, M))
    D = pairwise_distances(A, B, cost, method=method, chunk_size=chunk_size)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-12)
    refA = _loop(A, A, lambda a, b: ot.emd2(a, b, M))
    DA = pairwise_distances(A, None, cost, method=method, chunk_size=chunk_size)
    np.testing.assert_allclose(DA, refA, rtol=1e-9, atol=1e-12)
    assert np.array_equal(DA, DA.T) and np.all(np.diag(DA) == 0)


def test_exact_nonsymmetric_cost_computes_all_pairs(data):
    A, _, M = data
    Mn = M + np.triu(M) + 0.5 * np.eye(6)  # not symmetric, nonzero diagonal
    ref = _loop(A, A, lambda a, b: ot.emd2(a, b, Mn))
    D = pairwise_distances(A, M=Mn, chunk_size=5)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(D) > 0)


def test_exact_rectangular_bins(rng):
    A = random_histograms(rng, (4, 5))
    B = random_histograms(rng, (3, 7))
    M = rng.random((5, 7))
    ref = _loop(A, B, lambda a, b: ot.emd2(a, b, M))
    np.testing.assert_allclose(pairwise_distances(A, B, M, chunk_size=2), ref, rtol=1e-9, atol=1e-12)


def test_1d_support_and_p(data):
    A, B, _ = data
    x = np.array([0.0, 0.5, 2.0, 2.5, 4.0, 7.0])
    y = np.linspace(-1, 3, 6)
    ref = _loop(A, B, lambda a, b: ot.wasserstein_1d(x, y, a, b, p=2))
    D = pairwise_distances(A, B, method="1d", support=x, support_b=y, p=2, chunk_size=7)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-12)


def test_cdf_rho2_matches_closed_form(data):
    A, B, _ = data
    ref = _loop(A, B, lambda a, b: np.sum(np.abs(np.cumsum(a - b))[:-1] ** 2))
    np.testing.assert_allclose(pairwise_distances(A, B, method="cdf", rho=2), ref, rtol=1e-9, atol=1e-14)


def test_sinkhorn_matches_pot_loop(data):
    from otcore._sinkhorn import sinkhorn2

    A, B, M = data
    reg = 0.5
    # run to convergence: POT's per-pair loop is the reference
    ref = _loop(A, B, lambda a, b: ot.sinkhorn2(a, b, M, reg, numItermax=10000, stopThr=1e-13))
    D = pairwise_distances(A, B, M, method="sinkhorn", reg=reg, tol=1e-12, chunk_size=8)
    np.testing.assert_allclose(D, ref, rtol=1e-8)
    # fixed iterations: each entry is the per-pair call of the same kernel
    kw = dict(n_iter=30, tol=None)
    DA = pairwise_distances(A, M=M, method="sinkhorn", reg=reg, chunk_size=8, **kw)
    refA = _loop(A, A, lambda a, b: float(sinkhorn2(a, b, M, reg, **kw)))
    np.testing.assert_allclose(DA, refA, rtol=1e-12)
    assert np.all(np.diag(DA) > 0)  # fixed iterations: all pairs run, the diagonal too
    assert not np.allclose(DA, DA.T, rtol=1e-6)  # and W(a, b) != W(b, a)
    # to a tolerance: symmetric, only the upper triangle is computed, zero diagonal
    DT = pairwise_distances(A, M=M, method="sinkhorn", reg=reg, tol=1e-12)
    np.testing.assert_array_equal(DT, DT.T)
    refT = _loop(A, A, lambda a, b: float(sinkhorn2(a, b, M, reg, tol=1e-12)))
    np.testing.assert_allclose(DT, refT - np.diag(np.diag(refT)), rtol=1e-9)
    assert np.all(np.diag(DT) == 0)
    # B=A computes the diagonal (the entropic bias)
    DB = pairwise_distances(A, A, M, method="sinkhorn", reg=reg, tol=1e-12)
    np.testing.assert_allclose(DB, refT, rtol=1e-9)


def test_tree_matches_exact_on_tree_metric(rng):
    tree = importlib.import_module("otcore._tree")
    parent = np.array([-1, 0, 0, 1, 1, 2, 2, 3])
    weight = np.array([0.0, 2.0, 1.0, 1.0, 0.5, 1.5, 1.0, 0.3])
    A = random_histograms(rng, (6, 8))
    Mt = np.asarray(tree.tree_metric(parent, weight))
    ref = _loop(A, A, lambda a, b: ot.emd2(a, b, Mt))
    D = pairwise_distances(A, method="tree", tree=parent, weight=weight, chunk_size=4)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-12)
    compiled = tree.compile_tree(parent, weight)
    D2 = pairwise_distances(A, A[:2], method="tree", tree=compiled)
    np.testing.assert_allclose(D2, ref[:, :2], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------
# chunking


@settings(max_examples=25, deadline=None)
@given(
    na=st.integers(0, 9),
    nb=st.integers(1, 9),
    symmetric=st.booleans(),
    diag=st.booleans(),
    chunk=st.integers(1, 30),
)
def test_pair_chunks_cover_each_pair_once(na, nb, symmetric, diag, chunk):
    seen = []
    for i, j in _pair_chunks(na, nb if not symmetric else na, symmetric, diag, chunk):
        assert 1 <= len(i) <= chunk and len(i) == len(j)
        seen += list(zip(i.tolist(), j.tolist()))
    if symmetric:
        want = [(i, j) for i in range(na) for j in range(i if diag else i + 1, na)]
    else:
        want = [(i, j) for i in range(na) for j in range(nb)]
    assert seen == want


def test_kernel_calls_bounded_by_chunk(monkeypatch, rng):
    import otcore._onedim

    calls = []
    real = otcore._onedim.cdf_emd

    def spy(a, b, **kw):
        calls.append(a.shape[0])
        return real(a, b, **kw)

    monkeypatch.setattr(otcore._onedim, "cdf_emd", spy)
    A = random_histograms(rng, (20, 4))
    D = pairwise_distances(A, method="cdf", chunk_size=16)
    assert sum(calls) == 20 * 19 // 2  # upper triangle only
    assert max(calls) <= 16 and len(calls) == -(-190 // 16)
    calls.clear()
    pairwise_distances(A, A[:3], method="cdf", chunk_size=7)
    assert sum(calls) == 60 and max(calls) <= 7
    np.testing.assert_allclose(D, D.T)


def test_progress_bar_and_without_tqdm(monkeypatch, data, capsys):
    A, _, M = data
    D1 = pairwise_distances(A, M=M, method="cdf", progress=True)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    D2 = pairwise_distances(A, M=M, method="cdf", progress=True)
    np.testing.assert_array_equal(D1, D2)


def test_empty_rows(data):
    A, _, M = data
    assert pairwise_distances(A[:0], A, method="cdf").shape == (0, 9)
    assert pairwise_distances(A[:1], method="cdf").shape == (1, 1)


# --------------------------------------------------------------------------------------
# namespaces and dtypes


@pytest.mark.parametrize("method", ["cdf", "1d", "exact"])
def test_namespaces(xp, data, method):
    A, B, M = data
    ref = pairwise_distances(A, B, M if method == "exact" else None, method=method)
    D = pairwise_distances(asxp(xp, A), asxp(xp, B), asxp(xp, M) if method == "exact" else None,
                           method=method, chunk_size=6)
    xp_assert_close(D, ref, xp=xp, rtol=1e-12, atol=1e-14, dtype=xp.float64)


def test_float32_stays_float32(data):
    A, B, _ = data
    D = pairwise_distances(A.astype(np.float32), B.astype(np.float32), method="cdf")
    assert D.dtype == np.float32
    np.testing.assert_allclose(D, pairwise_distances(A, B, method="cdf"), rtol=1e-5, atol=1e-6)


def test_integer_counts_promoted():
    A = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 2]])
    D = pairwise_distances(A, M=_line_cost(3))
    assert D.dtype == np.float64
    np.testing.assert_allclose(D, 2 * _line_cost(3))


# --------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(A=np.ones(3) / 3, method="cdf"), r"A must be a 2-D.*A\[None, :\]"),
        (dict(A=np.ones((2, 3)) / 3, B=np.ones((2, 4)) / 4, method="cdf"), "common support"),
        (dict(A=np.ones((2, 3)) / 3), "needs the ground cost M"),
        (dict(A=np.ones((2, 3)) / 3, M=np.ones((3, 3)), method="sinkhorn"), "needs reg"),
        (dict(A=np.ones((2, 3)) / 3, method="cdf", reg=0.1), "reg is only used"),
        (dict(A=np.ones((2, 3)) / 3, method="bogus"), "unknown method"),
        (dict(A=np.ones((2, 3)) / 3, method="cdf", chunk_size=0), "chunk_size must be >= 1"),
        (dict(A=np.ones((2, 3)) / 3, M=np.ones((3, 4))), "must be square"),
        (dict(A=np.ones((2, 3)) / 3, B=np.ones((2, 3)) / 3, M=np.ones((3, 4))), "columns"),
        (dict(A=np.array([[0.5, 0.5, 0.0], [0.2, -0.1, 0.9]]), method="cdf"), "A row 1, bin 1 has negative"),
        (dict(A=np.array([[0.5, np.nan, 0.5]]), method="cdf"), "A row 0, bin 1 is nan"),
        (dict(A=np.array([[0.5, 0.5], [0.0, 0.0]]), method="cdf"), "A row 1 is all zero"),
        (dict(A=np.array([[0.5, 0.5], [1.0, 1.0]]), method="cdf"), "A row 1 sums to 2"),
        (dict(A=np.array([[0.5, 0.5]]), B=np.array([[1.0, 3.0]]), method="cdf"), "B row 0 sums to 4"),
        (dict(A=np.ones((2, 3)) / 3, method="tree"), "needs tree="),
        (dict(A=np.ones((2, 3)) / 3, B=np.ones((2, 4)) / 4, method="1d"), "support_b"),
    ],
)
def test_bad_input(kwargs, match):
    A = kwargs.pop("A")
    B = kwargs.pop("B", None)
    M = kwargs.pop("M", None)
    with pytest.raises(ValueError, match=match):
        pairwise_distances(A, B, M, **kwargs)


def test_1d_needs_no_equal_mass():
    A = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 0.0]])
    D = pairwise_distances(A, method="1d")  # weights are normalised per histogram
    np.testing.assert_allclose(D, [[0, 0.5], [0.5, 0]])


# --------------------------------------------------------------------------------------
# dask


def test_import_does_not_import_dask():
    code = (
        "import sys, otcore, otcore._pairwise, otcore.__main__; "
        "print(any(m.split('.')[0] in ('dask', 'distributed', 'tqdm') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _methods_for_dask():
    return ["exact", "cdf", "1d", "sinkhorn", "tree"]


def test_dask_distributed_identical_to_in_memory(dask_client, rng):
    import dask.array as da

    A = random_histograms(rng, (13, 6))
    B = random_histograms(rng, (7, 6))
    M = _line_cost(6)
    parent = np.array([-1, 0, 0, 1, 1, 2])
    extra = {
        "exact": dict(M=M),
        "sinkhorn": dict(M=M, reg=0.5, n_iter=50, tol=None),
        "cdf": dict(rho=2),
        "1d": dict(p=1),
        "tree": dict(tree=parent, weight=np.ones(6)),
    }
    for method in _methods_for_dask():
        kw = dict(extra[method])
        cost = kw.pop("M", None)
        for BB in (None, B):
            ref = pairwise_distances(A, BB, cost, method=method, **kw)
            dA = da.from_array(A, chunks=(4, 3))  # the bins axis is rechunked to one block
            dB = None if BB is None else da.from_array(BB, chunks=(3, 6))
            lazy = pairwise_distances(dA, dB, cost, method=method, **kw)
            assert isinstance(lazy, da.Array) and lazy.shape == ref.shape
            got = dask_client.compute(lazy).result()
            if method == "sinkhorn":  # batch composition differs: same iterations, BLAS rounding
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
            else:
                np.testing.assert_array_equal(got, ref)
    # float32 stays float32, and the lazy array declares it (a cost passed to cdf is ignored)
    A32 = A.astype(np.float32)
    lazy = pairwise_distances(da.from_array(A32, chunks=(5, 6)), None, M, method="cdf")
    assert lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.compute(), pairwise_distances(A32, method="cdf"))
    # a non-symmetric cost: all blocks are computed, none mirrored
    Mn = M + np.triu(M)
    ref = pairwise_distances(A, None, Mn)
    got = pairwise_distances(da.from_array(A, chunks=(5, 6)), None, Mn).compute()
    np.testing.assert_array_equal(got, ref)
