"""Pairwise distance matrices between two sets of histograms, in bounded memory.

:func:`pairwise_distances` computes ``D[i, j] = W(A[i], B[j])`` for every row
of ``A`` against every row of ``B`` (or every pair of rows of ``A``) with any
otcore family: the exact EMD, the Sinkhorn distance, the 1D closed form, the
CDF (squared) EMD on an ordered support, or the tree EMD.

How it runs
-----------
The list of pairs is cut into chunks of ``chunk_size`` pairs. For each chunk
the row indices are built on the host, the rows are gathered with
``xp.take`` and **one batched call** of the family's kernel computes all the
chunk's distances (Sinkhorn: one matrix product per iteration for the whole
chunk; 1D, CDF and tree: a few vectorised operations; exact: the kernel loops
over the pairs, as the LP has no batched form). Memory is bounded by the chunk,
``O(chunk_size * (n + m))``, plus the ``(NA, NB)`` output, never by
``NA * NB * (n + m)``.

With ``B=None`` the matrix is symmetric whenever the method is (the CDF and
tree EMD always; the exact distance when ``M`` is symmetric; the Sinkhorn
distance when ``M`` is symmetric and it runs to a tolerance -- a fixed number
of iterations, ``tol=None``, is not symmetric; the 1D EMD when both sides
share the support), and only the upper triangle is computed. The diagonal is zero without any computation where ``W(a, a) = 0``
(exact with a cost of zero diagonal, 1D, CDF, tree) and for the symmetric
Sinkhorn case: there ``sinkhorn2(a, a)`` is the positive entropic bias, not a
distance, and the slowest pair to converge; pass ``B=A`` to compute it.

Past one machine
----------------
If ``A`` (and ``B``) are ``dask.array`` arrays, the same function returns a
lazy dask array: the rows are split into the dask blocks of ``A`` and ``B``,
each block pair is one task running the in-memory function above on numpy (or
cupy) blocks, and ``.compute()`` runs them on whatever scheduler is active,
e.g. a ``dask.distributed`` cluster. With ``B=None`` only the upper block
triangle is computed; the lower blocks are transposes. Dask is imported only
when a dask array is passed (the optional ``dask`` extra).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from array_api_compat import is_dask_array

from otcore._array import Array, as_float, device, float_dtype, from_host, is_lazy, namespace, to_host
from otcore._validate import (
    check_choice,
    check_cost,
    check_equal_totals,
    check_int,
    check_scalar,
    check_values,
    mass_tolerance,
    scan_masses,
)

__all__ = ["pairwise_distances", "METHODS"]

METHODS = ("exact", "sinkhorn", "1d", "cdf", "tree")

# Elements gathered per chunk (rows of A and B together) when chunk_size is None:
# 2**21 float64 values = 16 MiB per side.
_CHUNK_ELEMENTS = 2**21
# Sinkhorn with a progress bar: chunks of total / _SINKHORN_UPDATES pairs (at least
# _SINKHORN_MIN_CHUNK, so each batched call still amortises its overhead); the bar shows
# the converged pairs (each pair leaves the batch when it converges).
_SINKHORN_UPDATES = 50
_SINKHORN_MIN_CHUNK = 256
_EXACT_CHUNK = 2048  # the network simplex solves a chunk of pairs in one compiled call


def pairwise_distances(
    A,
    B=None,
    M=None,
    *,
    method: str = "exact",
    reg: float | None = None,
    chunk_size: int | None = None,
    tree=None,
    progress: bool = False,
    **kwargs,
) -> Array:
    r"""Optimal-transport distances between all pairs of rows of ``A`` and ``B``.

    .. math::

        D_{ij} = W(A_i, B_j), \qquad 0 \le i < N_A,\; 0 \le j < N_B,

    where :math:`W` is the distance of ``method``; with ``B=None``,
    :math:`D_{ij} = W(A_i, A_j)` over all pairs of rows of ``A``.

    Parameters
    ----------
    A : array of shape (NA, n)
        Histograms, one per row (bins on the last axis). Any array-API array,
        or a ``dask.array`` (then a lazy dask array is returned, see Notes).
    B : array of shape (NB, m), optional
        Second set of histograms. ``None``: all pairs within ``A``.
    M : array of shape (n, m) or PointCloud, optional
        Ground cost; required for ``"exact"`` and ``"sinkhorn"`` (square when
        ``B`` is ``None``), ignored otherwise. ``"sinkhorn"`` also takes a
        lazy :class:`otcore.PointCloud` (histograms = weights on its points).
    method : {"exact", "sinkhorn", "1d", "cdf", "tree"}
        ``"exact"``: :func:`otcore.emd2`, a chunk of pairs per compiled call.
        ``"sinkhorn"``: :func:`otcore.sinkhorn2` (needs ``reg``),
        batched. ``"1d"``: :func:`otcore.wasserstein_1d` with the bins
        at positions ``support`` (keyword, default ``0, 1, ..., n-1``;
        ``support_b`` for ``B``, default ``support``), batched.
        ``"cdf"``: :func:`otcore.cdf_emd` (keywords ``rho``,
        ``spacing``), batched. ``"tree"``: :func:`otcore.tree_emd` on
        ``tree`` (keywords ``weight``, ``rho``), batched.
    reg : float, optional
        Entropic regularisation of the Sinkhorn distance (``K = exp(-M/reg)``).
    chunk_size : int, optional
        Pairs per batched call. Memory is ``O(chunk_size * (n + m))``. Default:
        as many pairs as fit in about 16 MiB of gathered rows (2048 for exact).
    tree : array of shape (n,) or compiled ``Tree``, optional
        The tree of ``method="tree"``: a parent array (``parent[root] = -1``,
        then pass ``weight=`` for the edge lengths) or the result of
        :func:`otcore.compile_tree` (compiled once here otherwise).
    progress : bool, default False
        Show a progress bar (tqdm, if installed; silently none otherwise).
    **kwargs
        Passed to the kernel: ``n_iter``, ``tol``, ``method`` of Sinkhorn
        (spell the latter ``sinkhorn_method``); ``method`` of exact (spell it
        ``exact_method``); ``p`` for ``"1d"``; ``rho``, ``spacing`` for
        ``"cdf"``; ``weight``, ``rho`` for ``"tree"``.

    Returns
    -------
    D : array of shape (NA, NB) (or (NA, NA))
        In the namespace, device and floating dtype of ``A``.

    Raises
    ------
    ValueError
        ``A``/``B`` not 2-D, bins that do not match ``M`` or each other, bad
        masses (named by row), a missing ``M``, ``reg`` or ``tree``.

    Notes
    -----
    Pairs are processed ``chunk_size`` at a time: the row indices of a chunk
    are built on the host, the rows gathered with ``xp.take``, and one
    batched kernel call computes the chunk. With ``B=None`` and a symmetric
    method only the upper triangle is computed and mirrored.

    With dask arrays, each pair of row blocks (the dask chunks of ``A`` and
    ``B``) is one task calling this function in memory; the result is a lazy
    ``(NA, NB)`` dask array, identical to the in-memory result once computed.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import pairwise_distances
    >>> A = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    >>> M = np.abs(np.arange(3)[:, None] - np.arange(3)[None, :]).astype(float)
    >>> pairwise_distances(A, M=M)
    array([[0., 1., 2.],
           [1., 0., 1.],
           [2., 1., 0.]])
    >>> D = pairwise_distances(A, A[:2], method="cdf")
    >>> D.shape
    (3, 2)
    """
    check_choice("method", method, METHODS)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    if method == "sinkhorn":
        if reg is None:
            raise ValueError(
                "method='sinkhorn' needs reg, the entropic regularisation (K = exp(-M/reg)); "
                "e.g. reg=0.05 * M.max()"
            )
        reg = check_scalar("reg", reg, positive=True)
    elif reg is not None:
        raise ValueError(f"reg is only used by method='sinkhorn', not method={method!r}; drop it")
    if is_dask_array(A) or (B is not None and is_dask_array(B)):
        return _pairwise_dask(A, B, M, method, reg, chunk_size, tree, kwargs)
    return _pairwise_memory(A, B, M, method, reg, chunk_size, tree, progress, kwargs)


# --------------------------------------------------------------------------------------
# input checks


def _as_rows(X, name: str, xp, dtype):
    X = as_float(X, xp, dtype, name=name)
    if X.ndim != 2:
        hint = f"; for one histogram use {name}[None, :]" if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array with one histogram per row, got shape {tuple(X.shape)}{hint}"
        )
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no bins; each row must be a histogram with at least one bin")
    return X


def _check_rows(X, name: str, xp):
    """Finite, non-negative masses and no all-zero row, naming the row and bin.

    :func:`otcore._validate.scan_masses` (the library's one value scan). Returns
    the row totals on the host (float64), ``None`` for lazy input or no rows.
    """
    return scan_masses(X, name, xp)


def _check_mass(sa, sb, names, tol: float) -> None:
    """All rows of A and B carry the same total mass (equal-mass methods).

    :func:`otcore._validate.check_equal_totals` on the totals from
    :func:`_check_rows` (``None``: not checked).
    """
    if sa is None or sb is None:
        return
    check_equal_totals(sa, sb, tol=tol, names=names)


def _symmetric_method(method, M, kwargs) -> bool:
    """Whether W(a, b) = W(b, a) for ``method`` on one set of histograms (B=None).

    CDF and tree: always; 1D: when both sides share the support; exact and
    Sinkhorn: when ``M`` is symmetric, and for Sinkhorn only when run to a
    tolerance (a fixed number of the asymmetric u, v updates gives
    W(a, b) != W(b, a)).
    """
    if method in ("cdf", "tree"):
        return True
    if method == "1d":
        return kwargs.get("support_b") is None
    if M is None or is_lazy(M) or M.shape[0] != M.shape[1]:
        return False
    if method == "sinkhorn" and kwargs.get("tol", 1e-9) is None:
        return False
    Mh = to_host(M)
    return bool(np.all(Mh == Mh.T))


def _zero_diagonal(method, M) -> bool:
    """Whether W(a, a) = 0 may be written without computing it (for a symmetric method).

    Exact: when ``M`` has a zero diagonal. Sinkhorn: set to zero by convention
    (the entropic bias sinkhorn2(a, a) > 0 is left out, pass B=A to get it):
    Sinkhorn converges slowest on identical pairs, which would hold a whole
    chunk back. 1D, CDF, tree: W(a, a) = 0.
    """
    if method != "exact":
        return True
    return not is_lazy(M) and bool(np.all(np.diagonal(to_host(M)) == 0))


def _lazy_cost(M, method):
    """``M`` if it is a :class:`otcore.PointCloud` (Sinkhorn only), else ``None``."""
    from otcore._pointcloud import PointCloud

    if not isinstance(M, PointCloud):
        return None
    if method != "sinkhorn":
        raise ValueError(
            f"a PointCloud cost is accepted by method='sinkhorn' only, not method={method!r}; "
            "pass M=cloud.to_dense() for the exact EMD"
        )
    return M


# --------------------------------------------------------------------------------------
# kernels: (a_chunk (c, n), b_chunk (c, m)) -> (c,)


def _make_kernel(method, xp, M, reg, tree, kwargs, n, m):
    """The batched kernel of ``method``: ``(a_chunk (c, n), b_chunk (c, m)) -> (c,)``."""
    kwargs = dict(kwargs)
    if method in ("exact", "sinkhorn"):
        if M is None:
            raise ValueError(f"method={method!r} needs the ground cost M of shape (n, m)")
        # the solver's own ``method`` keyword is spelt exact_method / sinkhorn_method here
        if f"{method}_method" in kwargs:
            kwargs["method"] = kwargs.pop(f"{method}_method")
        if method == "exact":
            from otcore._exact import emd2

            return lambda a, b: emd2(a, b, M, **kwargs)
        from otcore._sinkhorn import sinkhorn

        def run(a, b):  # counts converged pairs for the progress bar
            res = sinkhorn(a, b, M, reg, **kwargs)
            run.converged += res._converged_pairs()
            return res.cost

        run.converged = 0
        return run
    if method == "1d":
        from otcore._onedim import wasserstein_1d

        sa = kwargs.pop("support", None)
        sb = kwargs.pop("support_b", None)
        xa = _support(sa, n, xp, "support")
        xb = xa if sb is None else _support(sb, m, xp, "support_b")
        if sb is None and m != n:
            raise ValueError(
                f"A has {n} bins and B has {m}; pass support_b= (the positions of B's bins)"
            )

        def kernel(a, b):
            u = xp.broadcast_to(xp.astype(xa, a.dtype), a.shape)
            v = xp.broadcast_to(xp.astype(xb, b.dtype), b.shape)
            return wasserstein_1d(u, v, a, b, **kwargs)

        return kernel
    if method == "cdf":
        from otcore._onedim import cdf_emd

        if n != m:
            raise ValueError(
                f"method='cdf' needs histograms on one common support, but A has {n} bins "
                f"and B has {m}"
            )

        return lambda a, b: cdf_emd(a, b, **kwargs)
    # tree
    if tree is None:
        raise ValueError(
            "method='tree' needs tree=: a parent array (parent[root] = -1, with weight= for "
            "the edge lengths) or otcore.compile_tree(parent, weight)"
        )
    from otcore import _tree

    if n != m:
        raise ValueError(f"method='tree' needs the same nodes on both sides, but A has {n} bins and B has {m}")
    weight = kwargs.pop("weight", None)
    if not isinstance(tree, _tree.Tree):
        tree = _tree.compile_tree(tree, weight)  # once, not per chunk
        weight = None
    return lambda a, b: _tree.tree_emd(a, b, tree, weight, **kwargs)


def _support(s, n, xp, name):
    if s is None:
        return xp.arange(n, dtype=xp.float64)
    s = as_float(s, xp, name=name)
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name} must hold one position per bin, shape ({n},), got {tuple(s.shape)}")
    check_values(s, name, xp, nonneg=False, what="positions")
    return s


# --------------------------------------------------------------------------------------
# in-memory driver


def _pair_chunks(na: int, nb: int, symmetric: bool, diag: bool, chunk: int):
    """Yield ``(i, j)`` host index arrays of at most ``chunk`` pairs.

    Rectangular: all ``na * nb`` pairs in row-major order. Symmetric: the pairs
    ``i < j`` (``i <= j`` with ``diag``), row by row. Only one chunk of indices
    exists at a time.
    """
    if not symmetric:
        total = na * nb
        for k0 in range(0, total, chunk):
            k = np.arange(k0, min(k0 + chunk, total), dtype=np.int64)
            yield k // nb, k % nb
        return
    shift = 0 if diag else 1
    per_row = np.maximum(na - np.arange(na, dtype=np.int64) - shift, 0)
    offsets = np.concatenate([[0], np.cumsum(per_row)])
    total = int(offsets[-1])
    for k0 in range(0, total, chunk):
        k = np.arange(k0, min(k0 + chunk, total), dtype=np.int64)
        i = np.searchsorted(offsets, k, side="right") - 1
        j = i + shift + (k - offsets[i])
        yield i, j


def _n_pairs(na, nb, symmetric, diag):
    if not symmetric:
        return na * nb
    return na * (na + 1) // 2 if diag else na * (na - 1) // 2


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar
        return None
    return tqdm(total=total, unit="pair", desc="pairwise", leave=False)


def _pairwise_memory(A, B, M, method, reg, chunk_size, tree, progress, kwargs):
    cloud = _lazy_cost(M, method)
    xp = namespace(A, B, None if cloud is not None else M)
    dev = device(A) if hasattr(A, "shape") else None
    a0 = as_float(A, xp, name="A")
    b0 = None if B is None else as_float(B, xp, name="B")
    M0 = None if cloud is not None or M is None or method not in ("exact", "sinkhorn") else as_float(M, xp, name="M")
    dtype = float_dtype(xp, a0, b0, M0)
    A = _as_rows(a0, "A", xp, dtype)
    same = B is None
    B = A if same else _as_rows(b0, "B", xp, dtype)
    na, n = A.shape
    nb, m = B.shape
    sa = _check_rows(A, "A", xp)
    sb = sa if same else _check_rows(B, "B", xp)
    if M0 is not None:
        if same and M0.ndim == 2 and M0.shape[0] != M0.shape[1]:
            raise ValueError(
                f"with B=None the cost compares A's bins with themselves and must be square "
                f"({n}, {n}); got M of shape {tuple(M0.shape)}"
            )
        M0 = check_cost(M0, xp, shape=(n, m), dtype=dtype)
    if method in ("exact", "sinkhorn", "cdf", "tree"):
        _check_mass(sa, sb, ("A", "A" if same else "B"), mass_tolerance(dtype))

    if cloud is not None and (n, m) != cloud.shape:
        raise ValueError(
            f"the PointCloud has {cloud.shape} points but the histograms have ({n}, {m}) bins; "
            "pass one weight per point"
        )
    kernel = _make_kernel(method, xp, cloud if cloud is not None else M0, reg, tree, kwargs, n, m)
    symmetric = same and _symmetric_method(method, M0, kwargs)
    diag = not (symmetric and _zero_diagonal(method, M0))  # computed unless known to be zero
    total = _n_pairs(na, nb, symmetric, diag)
    if chunk_size is None:
        chunk_size = _EXACT_CHUNK if method == "exact" else max(1, _CHUNK_ELEMENTS // (n + m))
        if method == "sinkhorn" and progress:  # at least ~_SINKHORN_UPDATES moves of the bar
            chunk_size = min(chunk_size, max(_SINKHORN_MIN_CHUNK, -(-total // _SINKHORN_UPDATES)))

    out = np.zeros((na, nb), dtype=np.float32 if dtype == xp.float32 else np.float64)
    bar = _progress_bar(total, progress)
    try:
        for i, j in _pair_chunks(na, nb, symmetric, diag, chunk_size):
            ai = xp.take(A, from_host(i, xp, device=dev), axis=0)
            bj = xp.take(B, from_host(j, xp, device=dev), axis=0)
            vals = to_host(kernel(ai, bj))
            out[i, j] = vals
            if symmetric:
                out[j, i] = vals
            if bar is not None:
                if method == "sinkhorn":
                    bar.set_postfix(converged=kernel.converged, refresh=False)
                bar.update(len(i))
    finally:
        if bar is not None:
            bar.close()
    return from_host(out, xp, device=dev, dtype=dtype)


# --------------------------------------------------------------------------------------
# dask driver


def _block_task(a, b, M, method, reg, chunk_size, tree, kwargs):
    return _pairwise_memory(a, b, M, method, reg, chunk_size, tree, False, kwargs)


def _pairwise_dask(A, B, M, method, reg, chunk_size, tree, kwargs):
    import dask
    import dask.array as da

    def rows(X, name):
        if not is_dask_array(X):
            X = da.from_array(np.asarray(X) if isinstance(X, (list, tuple)) else X, chunks=(-1, -1))
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array with one histogram per row, got shape {X.shape}")
        if any(math.isnan(s) for s in X.shape):
            raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
        return X.rechunk({1: -1})  # one block holds whole histograms

    A = rows(A, "A")
    same = B is None
    B = A if same else rows(B, "B")
    if A.shape[1] == 0 or B.shape[1] == 0:
        raise ValueError("A and B need at least one bin per histogram")
    if method not in ("exact", "sinkhorn"):
        M = None  # ignored by the other methods: neither shipped nor counted in the dtype
    if M is not None:
        if is_dask_array(M):
            M = M.compute()
        if tuple(M.shape) != (A.shape[1], B.shape[1]):
            raise ValueError(
                f"M has shape {tuple(M.shape)} but must be (bins of A, bins of B) = "
                f"({A.shape[1]}, {B.shape[1]})"
            )
    dtype = np.result_type(A.dtype, B.dtype, np.float32 if M is None else getattr(M, "dtype", np.float64))
    dtype = np.float32 if dtype == np.float32 else np.float64

    # one graph key for the shared, possibly large, objects
    Md = dask.delayed(M, pure=True) if M is not None else None
    td = dask.delayed(tree, pure=True) if tree is not None and not isinstance(tree, numbers.Number) else tree
    ab = A.to_delayed()[:, 0]
    bb = B.to_delayed()[:, 0]
    ra, rb = A.chunks[0], B.chunks[0]
    task = dask.delayed(_block_task, pure=True)
    sym = same and _symmetric_method(method, M, kwargs)
    grid = [[None] * len(rb) for _ in ra]
    for bi in range(len(ra)):
        for bj in range(len(rb)):
            if sym and bj < bi:
                continue
            if same and bi == bj:
                d = task(ab[bi], None, Md, method, reg, chunk_size, td, kwargs)
            else:
                d = task(ab[bi], bb[bj], Md, method, reg, chunk_size, td, kwargs)
            grid[bi][bj] = da.from_delayed(d, shape=(ra[bi], rb[bj]), dtype=dtype)
    if sym:
        for bi in range(len(ra)):
            for bj in range(bi):
                grid[bi][bj] = grid[bj][bi].T
    return da.block(grid)
