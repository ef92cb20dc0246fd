"""Tests for otcore._tree: tree EMD (HEMD^rho), its gradient and the tree builders.

References: POT's exact LP ``ot.emd2`` under the tree's shortest-path metric,
a dense subtree-indicator matrix (the definition), cdf_emd on chains, finite
differences, scipy's cophenetic distances.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import squareform

from otcore._onedim import cdf_emd, cdf_emd_grad
from otcore._tree import (
    Tree,
    compile_tree,
    tree_emd,
    tree_emd_grad,
    tree_from_children,
    tree_from_linkage,
    tree_metric,
)
from tests._helpers import assert_namespace, asxp, random_histograms, xp_assert_close

ot = pytest.importorskip("ot")


def random_tree(rng, n, *, chainy=False, zero_edges=False):
    """Random recursive tree (node i's parent uniform in 0..i-1), shuffled labels."""
    if chainy:
        par = np.array([-1] + [max(0, i - 1 - int(rng.integers(0, 2))) for i in range(1, n)])
    else:
        par = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    perm = rng.permutation(n)  # relabel: the root is not node 0 in general
    inv = np.argsort(perm)
    parent = np.where(par[inv] >= 0, perm[np.maximum(par[inv], 0)], -1)
    weight = rng.random(n) + 0.1
    if zero_edges:
        weight[rng.random(n) < 0.3] = 0.0
    return parent, weight


def subtree_matrix(parent):
    """``S[e, j] = 1`` if node ``j`` is in the subtree of node ``e`` (walking up the parents)."""
    n = len(parent)
    S = np.zeros((n, n))
    for j in range(n):
        e = j
        while e != -1:
            S[e, j] = 1.0
            e = parent[e]
    return S


def dense_reference(a, b, parent, weight, rho):
    """Value and centred gradient straight from the definition (subtree indicator)."""
    S = subtree_matrix(parent)
    w = np.where(parent >= 0, weight, 0.0)
    phi = S @ (a - b)
    val = np.sum(w * np.abs(phi) ** rho)
    g = S.T @ (w * rho * np.sign(phi) * np.abs(phi) ** (rho - 1))
    return val, g - g.mean()


# --------------------------------------------------------------------------- values


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 25), seed=st.integers(0, 2**31), chainy=st.booleans(), zero_edges=st.booleans(),
       sparse=st.booleans())
def test_rho1_equals_emd2_on_tree_metric(n, seed, chainy, zero_edges, sparse):
    rng = np.random.default_rng(seed)
    parent, weight = random_tree(rng, n, chainy=chainy, zero_edges=zero_edges)
    a = random_histograms(rng, (n,), zeros=n // 2 if sparse else 0)
    b = random_histograms(rng, (n,))
    ref = ot.emd2(a, b, tree_metric(parent, weight), numItermax=10**7)
    assert float(tree_emd(a, b, parent, weight)) == pytest.approx(ref, rel=1e-10, abs=1e-13)


def test_rho1_equals_emd2_large_tree():
    rng = np.random.default_rng(0)
    n = 300
    parent, weight = random_tree(rng, n)
    t = compile_tree(parent, weight)
    M = tree_metric(t)
    for _ in range(3):
        a, b = random_histograms(rng, (n,)), random_histograms(rng, (n,))
        ref = ot.emd2(a, b, M, numItermax=10**7)
        assert float(tree_emd(a, b, t)) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("rho", [1, 2, 1.5, 3])
def test_matches_definition(rho):
    rng = np.random.default_rng(int(rho * 10))
    for n in (1, 2, 7, 40):
        parent, weight = random_tree(rng, n)
        a, b = random_histograms(rng, (n,)), random_histograms(rng, (n,))
        val, grad = dense_reference(a, b, parent, weight, rho)
        assert float(tree_emd(a, b, parent, weight, rho=rho)) == pytest.approx(val, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(tree_emd_grad(a, b, parent, weight, rho=rho), grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rho", [1, 2, 2.5])
def test_chain_reproduces_cdf_emd(rho):
    rng = np.random.default_rng(1)
    n = 15
    s = rng.random(n - 1) + 0.1
    a, b = random_histograms(rng, (3, n)), random_histograms(rng, (3, n))
    # root at bin 0, edge above bin i (i >= 1) has the length of the gap (i-1, i)
    parent, weight = np.arange(-1, n - 1), np.concatenate([[0.0], s])
    np.testing.assert_allclose(tree_emd(a, b, parent, weight, rho=rho), cdf_emd(a, b, rho=rho, spacing=s), rtol=1e-12)
    np.testing.assert_allclose(tree_emd_grad(a, b, parent, weight, rho=rho),
                               cdf_emd_grad(a, b, rho=rho, spacing=s), rtol=1e-10, atol=1e-12)
    # the same chain rooted at the last bin (reverse order)
    parent_r, weight_r = np.arange(1, n + 1), np.concatenate([s, [0.0]])
    parent_r[-1] = -1
    np.testing.assert_allclose(tree_emd(a, b, parent_r, weight_r, rho=rho), cdf_emd(a, b, rho=rho, spacing=s),
                               rtol=1e-12)


def test_known_values():
    t = compile_tree([-1, 0, 0, 1, 1], [0.0, 1.0, 2.0, 0.5, 0.5])
    e = np.eye(5)
    assert float(tree_emd(e[3], e[2], t)) == pytest.approx(3.5)
    assert float(tree_emd(e[3], e[4], t)) == pytest.approx(1.0)
    assert float(tree_emd(e[0], e[0], t)) == 0.0
    assert isinstance(tree_emd(e[3], e[2], t), np.ndarray) and tree_emd(e[3], e[2], t).shape == ()


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("rho", [1, 2])
def test_grad_finite_differences(rho):
    rng = np.random.default_rng(2 + rho)
    n = 12
    checked = 0
    while checked < 4:
        parent, weight = random_tree(rng, n)
        a, b = random_histograms(rng, (n,)), random_histograms(rng, (n,))
        t = compile_tree(parent, weight)
        # keep away from kinks: every subtree difference clearly non-zero
        phi = subtree_matrix(parent) @ (a - b)
        if np.min(np.abs(phi[parent >= 0])) < 1e-3:
            continue
        g = np.asarray(tree_emd_grad(a, b, t, rho=rho))
        assert abs(g.sum()) < 1e-12
        h = 1e-6
        for _ in range(3):
            d = rng.normal(size=n)
            d -= d.mean()
            fd = (tree_emd(a + h * d, b, t, rho=rho) - tree_emd(a - h * d, b, t, rho=rho)) / (2 * h)
            assert float(g @ d) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
        checked += 1


def test_grad_is_zero_at_balance_and_antisymmetric():
    rng = np.random.default_rng(3)
    parent, weight = random_tree(rng, 30)
    a, b = random_histograms(rng, (30,)), random_histograms(rng, (30,))
    t = compile_tree(parent, weight)
    np.testing.assert_array_equal(tree_emd_grad(a, a, t), np.zeros(30))
    np.testing.assert_allclose(tree_emd_grad(a, b, t, rho=2), -tree_emd_grad(b, a, t, rho=2), atol=1e-13)


# --------------------------------------------------------------------------- batch, namespaces


def test_batch_equals_per_pair():
    rng = np.random.default_rng(4)
    n = 20
    t = compile_tree(*random_tree(rng, n))
    A = random_histograms(rng, (2, 3, n))
    B = random_histograms(rng, (3, n))
    for rho in (1, 2):
        val, grad = tree_emd(A, B, t, rho=rho), tree_emd_grad(A, B, t, rho=rho)
        assert val.shape == (2, 3) and grad.shape == (2, 3, n)
        for i in range(2):
            for j in range(3):
                assert float(val[i, j]) == pytest.approx(float(tree_emd(A[i, j], B[j], t, rho=rho)), rel=1e-13)
                np.testing.assert_allclose(grad[i, j], tree_emd_grad(A[i, j], B[j], t, rho=rho), atol=1e-13)


def test_leaf_histograms():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(8, 2))
    parent, weight = tree_from_linkage(linkage(X, "average"))
    t = compile_tree(parent, weight)
    assert t.leaves_first and t.n_leaves == 8 and t.n == 15
    a, b = random_histograms(rng, (4, 8)), random_histograms(rng, (4, 8))
    pad = np.zeros((4, 7))
    full_a, full_b = np.concatenate([a, pad], -1), np.concatenate([b, pad], -1)
    np.testing.assert_allclose(tree_emd(a, b, t), tree_emd(full_a, full_b, t), rtol=1e-13)
    g = tree_emd_grad(a, b, t, rho=2)
    gf = np.asarray(tree_emd_grad(full_a, full_b, t, rho=2))[..., :8]
    np.testing.assert_allclose(g, gf - gf.mean(-1, keepdims=True), atol=1e-13)
    # rho = 1 on leaves = EMD under 2 x cophenetic distance
    M = 2 * squareform(cophenet(linkage(X, "average")))
    assert float(tree_emd(a[0], b[0], t)) == pytest.approx(ot.emd2(a[0], b[0], M), rel=1e-10)


@pytest.mark.parametrize("rho", [1, 2])
def test_xp(xp, rho):
    rng = np.random.default_rng(6)
    n = 25
    t = compile_tree(*random_tree(rng, n))
    A, B = random_histograms(rng, (3, n)), random_histograms(rng, (n,))
    got = tree_emd(asxp(xp, A), asxp(xp, B), t, rho=rho)
    xp_assert_close(got, tree_emd(A, B, t, rho=rho), xp=xp, rtol=1e-12)
    g = tree_emd_grad(asxp(xp, A), asxp(xp, B), t, rho=rho)
    xp_assert_close(g, tree_emd_grad(A, B, t, rho=rho), xp=xp, rtol=1e-12, atol=1e-13)
    g32 = tree_emd_grad(asxp(xp, A, xp.float32), asxp(xp, B, xp.float32), t, rho=rho)
    assert g32.dtype == xp.float32
    xp_assert_close(g32, tree_emd_grad(A, B, t, rho=rho), rtol=1e-4, atol=1e-4)


def test_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(7)
    n = 12
    t = compile_tree(*random_tree(rng, n))
    A, B = random_histograms(rng, (3, n)), random_histograms(rng, (n,))
    f = jax.jit(lambda a, b: (tree_emd(a, b, t), tree_emd_grad(a, b, t, rho=2)))
    val, grad = f(jnp.asarray(A, dtype=jnp.float32), jnp.asarray(B, dtype=jnp.float32))
    assert_namespace(val, jnp)
    np.testing.assert_allclose(np.asarray(val), tree_emd(A, B, t), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(grad), tree_emd_grad(A, B, t, rho=2), atol=1e-5)


# --------------------------------------------------------------------------- builders and metric


def test_tree_metric():
    rng = np.random.default_rng(8)
    parent, weight = random_tree(rng, 10, zero_edges=True)
    D = tree_metric(parent, weight)
    t = compile_tree(parent, weight)
    # distance to the root = sum of edge lengths on the path
    for v in range(10):
        e, s = v, 0.0
        while parent[e] != -1:
            s += weight[e]
            e = parent[e]
        assert D[v, t.root] == pytest.approx(s)
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(tree_metric(t), D)
    # Tree.depth: number of edges to the root = the unit-length metric to the root
    np.testing.assert_array_equal(t.depth, tree_metric(parent)[:, t.root])


def test_tree_from_linkage_cophenetic():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(12, 3))
    for method in ("single", "complete", "average", "ward"):
        Z = linkage(X, method)
        parent, weight = tree_from_linkage(Z)
        D = tree_metric(parent, weight)[:12, :12]
        np.testing.assert_allclose(D, 2 * squareform(cophenet(Z)), rtol=1e-12, atol=1e-12)


def test_tree_from_children():
    p, w = tree_from_children({0: [1, 2], 1: [(3, 2.5), 4]})
    assert p.tolist() == [-1, 0, 0, 1, 1] and w.tolist() == [0.0, 1.0, 1.0, 2.5, 1.0]
    p, w = tree_from_children([[0, 1], [2, [3, 4]]])
    t = compile_tree(p, w)
    assert t.leaves_first and t.n_leaves == 5 and t.root == 8
    D = tree_metric(t)
    assert D[0, 1] == 2 and D[3, 4] == 2 and D[2, 3] == 3 and D[0, 3] == 5
    with pytest.raises(ValueError, match="listed as a child of both"):
        tree_from_children({0: [1], 2: [1]})
    with pytest.raises(ValueError, match="cycle"):
        tree_from_children({0: [1], 2: [3], 3: [2]})
    with pytest.raises(ValueError, match="missing"):
        tree_from_children({0: [2]})
    with pytest.raises(ValueError, match="leaves must be the integers"):
        tree_from_children([[0, 2], 3])
    with pytest.raises(TypeError, match="children must be a dict"):
        tree_from_children("abc")
    with pytest.raises(ValueError, match=r"children\[0\]: the length of child 1 must be a number"):
        tree_from_children({0: [(1, "x")]})


def test_tree_from_linkage_bad():
    with pytest.raises(ValueError, match="Z is not a valid linkage"):
        tree_from_linkage(np.zeros((2, 3)))
    Z = np.array([[0.0, 1.0, 2.0, 2.0], [2.0, 3.0, 1.0, 3.0]])  # second merge below the first
    with pytest.raises(ValueError, match="Z"):
        tree_from_linkage(Z)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "parent, match",
    [
        ([-1, 0, 5], "out of range"),
        ([-1, 0, -2], "out of range"),
        ([1, 2, 0], "no root"),
        ([-1, -1, 0], "several roots"),
        ([-1, 2, 1], "cycle"),
        ([-1, 1], "cycle"),  # self-loop
        ([[-1, 0]], "1-D"),
        ([], "empty"),
        ([-1, 0.5], "integer"),
    ],
)
def test_bad_parent(parent, match):
    a = np.ones(max(len(parent), 1)) / max(len(parent), 1)
    with pytest.raises(ValueError, match=match):
        compile_tree(np.asarray(parent))
    with pytest.raises(ValueError, match=match):
        tree_emd(a, a, np.asarray(parent))


@pytest.mark.parametrize(
    "weight, match",
    [
        ([0.0, -1.0, 1.0], "negative edge length"),
        ([0.0, np.inf, 1.0], "non-finite"),
        ([0.0, np.nan, 1.0], "non-finite"),
        ([0.0, 1.0], "one edge length per node"),
    ],
)
def test_bad_weight(weight, match):
    with pytest.raises(ValueError, match=match):
        compile_tree([-1, 0, 0], np.asarray(weight))


def test_parent_none():
    with pytest.raises(TypeError, match="parent must be an array"):
        compile_tree(None)


def test_root_weight_ignored():
    t = compile_tree([-1, 0, 0], [np.nan, 1.0, 2.0])
    assert t.weight[0] == 0.0


def test_bad_histograms_and_rho():
    t = compile_tree([-1, 0, 0], [0.0, 1.0, 2.0])
    a = np.array([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="rho must be >= 1"):
        tree_emd(a, a, t, rho=0.9)
    with pytest.raises(ValueError, match="tree has 3 nodes"):
        tree_emd(a[:2] / a[:2].sum(), a[:2] / a[:2].sum(), t)
    with pytest.raises(ValueError, match="same total mass"):
        tree_emd(a, 2 * a, t)
    with pytest.raises(ValueError, match="a has negative masses"):
        tree_emd_grad(np.array([1.2, -0.2, 0.0]), a, t)
    with pytest.raises(ValueError, match=r"same total mass \(batch entry 1\)"):
        tree_emd(np.stack([a, a]), np.stack([a, 2 * a]), t)
    with pytest.raises(ValueError, match="b contains NaN"):
        tree_emd(np.stack([a, a]), np.stack([a, [np.nan, 0.5, 0.5]]), t)
    with pytest.raises(ValueError, match="already a compiled Tree"):
        tree_emd(a, a, t, np.ones(3))
    assert isinstance(t, Tree)
