r"""Exact earth mover's distance: the Kantorovich LP with certified dual potentials.

For histograms :math:`a \in \mathbb{R}_+^n`, :math:`b \in \mathbb{R}_+^m` of
equal total mass and a cost :math:`M \in \mathbb{R}_+^{n \times m}`,

.. math::

    W(a, b) = \min_{P \ge 0,\ P 1 = a,\ P^\top 1 = b} \langle P, M \rangle
            = \max_{f_i + g_j \le M_{ij}} \langle a, f \rangle + \langle b, g \rangle .

:func:`emd` returns the optimal plan :math:`P`, the cost and a pair of dual
potentials :math:`(f, g)`. The potentials are the *certificate*: they satisfy
:math:`f_i + g_j \le M_{ij}` up to ``max_violation`` (checked on every entry of
``M``) and :math:`\langle a, f\rangle + \langle b, g\rangle` equals the cost,
so the plan is provably optimal whatever solver produced it.

Methods
-------
``"linprog"``
    the full LP (``n*m`` variables, sparse ``(n+m) x n*m`` equality
    constraints) through :func:`scipy.optimize.linprog` (HiGHS); the reference.
``"full"``
    the full LP solved directly in HiGHS (``highspy``): the ``(n+m) x nm``
    constraint matrix built in CSC form with plain numpy (column ``i*m + j``
    has a 1 in rows ``i`` and ``n + j``), no presolve, no warm start from
    Sinkhorn. The model is kept per support (and per thread, across calls
    with the same ``M``): for further pairs only the row bounds (the masses)
    change before the simplex is re-run. Fastest for small problems.
``"sparse"``
    certified column generation on HiGHS (``highspy``, the solver behind
    ``linprog``, used directly for warm starts): approximate duals from an
    eps-scaled, over-relaxed Sinkhorn on the host; a candidate support of the
    ``k`` smallest reduced costs :math:`M_{ij} - f_i - g_j` of every row and
    column plus a greedy feasible plan; a starting simplex basis from the
    minimum spanning tree of the candidates; then vectorised pricing of every
    reduced cost (in row blocks, never a dense constraint matrix) and
    warm-started re-solves until no reduced cost is below ``-tol * max(M)``.
    Exact and certified; memory ``O(nm)`` for ``M`` and one kernel only.
``"assignment"``
    :func:`scipy.optimize.linear_sum_assignment` when ``a`` and ``b`` are
    uniform with ``n == m`` (after dropping zero bins); the potentials come
    from shortest paths (vectorised Bellman-Ford) on the difference
    constraints :math:`f_i - f_k \le M_{i\sigma(k)} - M_{k\sigma(k)}` of the
    optimal permutation :math:`\sigma`, falling back to column generation
    started from :math:`\sigma` when those paths are long.
``"auto"``
    ``"assignment"`` for uniform square problems with ``n <= 200``, else
    ``"full"`` when ``n*m <= 3000`` (after dropping zero bins), else
    ``"sparse"`` (measured crossover of ``"full"`` and ``"sparse"``: n = m
    about 55).

All methods run on the host (one transfer in with :func:`~otcore._array.to_host`,
one out with :func:`~otcore._array.from_host`): results are in the input's
namespace, dtype and device.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from otcore._array import Array, from_host, to_host
from otcore._array import device as _device
from otcore._validate import (
    reject_pot_keywords,
    batch_shape,
    check_choice,
    check_histograms,
    check_int,
    check_scalar,
)

__all__ = ["EMDResult", "emd", "emd2"]

_METHODS = ("auto", "full", "linprog", "sparse", "assignment")
# "auto" uses the assignment solver for uniform square problems up to this size (above
# it, column generation is faster: the assignment duals need O(n^2) Bellman-Ford sweeps)
_ASSIGN_MAX = 200
# vectorised Bellman-Ford sweeps for the assignment duals before falling back to pricing
_BF_MAX_ITER = 60
# Sinkhorn schedule (eps relative to max(M); None: from the resolution of M, see
# _eps_schedule) and iterations per level for initial duals
_SINKHORN_EPS = None
_SINKHORN_ITER = 20
_SINKHORN_OMEGA = 1.8
_SMALL_SINKHORN_NM = 40_000
# initial candidates per row / column, and columns added per row in a pricing round
_K_INIT = 5
_K_PRICE = 4
# HiGHS options of the column-generation model; re-solves after adding columns start from
# a primal feasible basis, where the primal simplex needs far fewer iterations
_HIGHS_OPTIONS = {"simplex_scale_strategy": 0, "simplex_dual_edge_weight_strategy": 1}
_HIGHS_RESOLVE = {"simplex_strategy": 4}
# greedy feasible plan on the candidates (else the north-west corner rule), used above
# this many entries (below, its Python loop costs more than it saves)
_GREEDY = True
_GREEDY_MIN = 250_000
# Sinkhorn iterations between absorptions of the scalings into the potentials
_SINKHORN_ABSORB = 20
_TRACE = None  # a list to record (round, columns, simplex iterations, objective, violation)


@dataclass(frozen=True, eq=False)
class EMDResult:
    r"""Result of :func:`emd` (immutable).

    Attributes
    ----------
    cost : array, shape batch
        :math:`\langle P, M \rangle`, the earth mover's distance.
    f : array, shape batch + (n,)
        Source potentials.
    g : array, shape batch + (m,)
        Target potentials. Normalised so that :math:`\langle a, f\rangle =
        \langle b, g\rangle = \mathrm{cost}/2` (the dual is defined up to
        :math:`(f + c, g - c)`).
    method : str
        The method actually used (``"full"``, ``"linprog"``, ``"sparse"`` or
        ``"assignment"``; for a batch, the one used for the first pair).
    status : str or tuple of str
        ``"optimal"`` (one string per pair, flattened in C order, for a batch).
    max_violation : array, shape batch
        The certificate: :math:`\max(0, \max_{ij} f_i + g_j - M_{ij})`, the
        magnitude of the most negative reduced cost over *all* of ``M``
        (0 when the potentials are exactly dual feasible).
    n_rounds : int
        Pricing rounds of ``"sparse"`` (max over the batch; 0 otherwise).
    plan : array, shape batch + (n, m)
        The optimal coupling, built densely on first access (the solver keeps
        it sparse: at most ``n + m - 1`` nonzeros per pair).
    """

    cost: Array
    f: Array
    g: Array
    method: str
    status: Any
    max_violation: Array
    n_rounds: int = 0
    _coo: tuple = field(default=(), repr=False, compare=False)
    _shape: tuple = field(default=(), repr=False, compare=False)
    _xp: Any = field(default=None, repr=False, compare=False)
    _device: Any = field(default=None, repr=False, compare=False)
    _dtype: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def plan(self) -> Array:
        """The optimal plan, shape batch + (n, m), built on first access."""
        P = np.zeros(self._shape, dtype=np.float64)
        flat = P.reshape((-1,) + self._shape[-2:])
        for k, (r, c, v) in enumerate(self._coo):
            flat[k, r, c] = v
        return from_host(P, self._xp, device=self._device, dtype=self._dtype)

    def plan_coo(self, index: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, values)`` of the plan of batch pair ``index`` (host numpy)."""
        return self._coo[index]


# ---------------------------------------------------------------------------------------
# host solvers: each takes float64 numpy a (n,), b (m,) with positive entries summing
# to one, and C (n, m) with max(C) <= 1 (costs already scaled), and returns
# (rows, cols, vals, f, g, n_rounds)
# ---------------------------------------------------------------------------------------

_HIGHS_TOL = 1e-10


def _fail(name: str, status, message: str):
    raise RuntimeError(
        f"exact EMD ({name}) failed: status {status}: {message}. The problem may be badly "
        "scaled; try another method= or rescale M"
    )


def _solve_linprog(a, b, C):
    from scipy import sparse
    from scipy.optimize import linprog

    n, m = C.shape
    nm = n * m
    k = np.arange(nm)
    rows = np.concatenate([k // m, n + k % m])
    cols = np.concatenate([k, k])
    A = sparse.csr_matrix((np.ones(2 * nm), (rows, cols)), shape=(n + m, nm))
    res = linprog(
        C.ravel(),
        A_eq=A,
        b_eq=np.concatenate([a, b]),
        bounds=(0, None),
        method="highs",
        options={"primal_feasibility_tolerance": _HIGHS_TOL, "dual_feasibility_tolerance": _HIGHS_TOL},
    )
    if res.status != 0:
        _fail("linprog", res.status, res.message)
    x = res.x
    nz = np.flatnonzero(x > 0)
    y = res.eqlin.marginals
    return nz // m, nz % m, x[nz], y[:n].copy(), y[n:].copy(), 0


# --- full LP on highspy (small problems) -------------------------------------------------

# "auto" solves the full LP directly (no Sinkhorn, no pricing) up to this many entries n*m
_FULL_MAX = 3_000


def _new_highs():
    import highspy

    # the bare core class: the Python wrapper prints a banner and installs callbacks
    h = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("primal_feasibility_tolerance", _HIGHS_TOL)
    h.setOptionValue("dual_feasibility_tolerance", _HIGHS_TOL)
    h.setOptionValue("threads", 1)
    return h


class _FullModel:
    """The whole transport LP (n*m columns) as a live HiGHS model.

    The constraint matrix is built in CSC form with plain numpy: column ``i*m + j``
    has a 1 in row ``i`` and a 1 in row ``n + j``. Between pairs with the same support
    only the row bounds (the masses) change: :meth:`solve` updates them and re-runs
    the simplex (from a cold start, for order-independent results).
    """

    def __init__(self, C):
        import highspy

        n, m = C.shape
        self.n, self.m = n, m
        self.h = h = _new_highs()
        h.setOptionValue("presolve", "off")
        for k, v in _HIGHS_OPTIONS.items():
            h.setOptionValue(k, v)
        z = np.zeros(n + m)
        h.addRows(
            n + m, z, z, 0, np.zeros(n + m, dtype=np.int32),
            np.empty(0, dtype=np.int32), np.empty(0),
        )  # fmt: skip
        nm = n * m
        idx = np.empty((n, m, 2), dtype=np.int32)
        idx[:, :, 0] = np.arange(n, dtype=np.int32)[:, None]
        idx[:, :, 1] = np.arange(n, n + m, dtype=np.int32)[None, :]
        starts = np.arange(0, 2 * nm, 2, dtype=np.int32)
        h.addCols(
            nm, np.ascontiguousarray(C, dtype=np.float64).ravel(), np.zeros(nm),
            np.full(nm, highspy.kHighsInf), 2 * nm, starts, idx.ravel(), np.ones(2 * nm),
        )  # fmt: skip
        self._rows = np.arange(n + m, dtype=np.int32)
        self._optimal = highspy.HighsModelStatus.kOptimal

    def solve(self, a, b):
        n, m = self.n, self.m
        rhs = np.concatenate([a, b])
        h = self.h
        # a cold start on the kept model: a warm start from the previous pair's basis is
        # a little faster but makes the result depend (at rounding level) on the order of
        # the pairs; this way a pair's result is bitwise the same alone or in any batch
        h.clearSolver()
        h.changeRowsBounds(n + m, self._rows, rhs, rhs)
        h.run()
        st = h.getModelStatus()
        if st != self._optimal:
            _fail("full", st, h.modelStatusToString(st))
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        y = np.asarray(sol.row_dual)
        nz = np.flatnonzero(x > 0)
        return nz // m, nz % m, x[nz], y[:n].copy(), y[n:].copy(), 0


_LOCAL = threading.local()
# the cross-call model cache holds models for one cost matrix up to this many entries
_CACHE_MAX_NM = 4 * _FULL_MAX


def _model_cache(M):
    """Per-thread cache of full-LP models ({support key: _FullModel}) for the cost M.

    Kept across calls (for loops such as ``pairwise_distances``) while the same ``M`` (by
    value) comes back; a different ``M`` starts a fresh cache. For a large ``M`` (whose
    reduced supports may still be small) a fresh dict for this call only.
    """
    if M.size > _CACHE_MAX_NM:
        return {}
    last = getattr(_LOCAL, "cache", None)
    if last is not None and last[0].shape == M.shape and np.array_equal(last[0], M):
        return last[1]
    cache: dict = {}
    _LOCAL.cache = (M.copy(), cache)
    return cache


def _solve_full(a, b, C, cache=None, key=None):
    """The full LP in highspy; ``cache`` (a dict) keeps the model per support ``key``
    so that a batch only changes the row bounds and re-solves."""
    if cache is None:
        return _FullModel(C).solve(a, b)
    model = cache.get(key)
    if model is None:
        if len(cache) >= 32:  # many zero-bin patterns: bound the memory
            cache.clear()
        model = cache[key] = _FullModel(C)
    return model.solve(a, b)


# --- assignment -------------------------------------------------------------------------


def _is_uniform(x) -> bool:
    return bool(np.ptp(x) <= 1e-12 * np.max(x))


def _solve_assignment(a, b, C, tol):
    from scipy.optimize import linear_sum_assignment

    n = C.shape[0]
    r, c = linear_sum_assignment(C)
    # potentials: f_i - f_k <= C[i, c_k] - C[k, c_k] for all i, k (difference constraints);
    # shortest paths from a virtual source by vectorised Bellman-Ford
    W = C[:, c].T - C[r, c][:, None]  # W[k, i]: edge k -> i
    f = np.zeros(n)
    converged = False
    for _ in range(min(n, _BF_MAX_ITER)):
        f_new = np.minimum(f, np.min(f[:, None] + W, axis=0))
        if np.all(f_new >= f - 1e-15):
            converged = True
            break
        f = f_new
    del W
    vals = np.full(n, 1.0 / n)
    if not converged:
        # long shortest paths: certify through the column-generation solver, started
        # from the optimal permutation
        return _solve_sparse(a, b, C, tol, extra=(r, c))
    g = np.empty(n)
    g[c] = C[r, c] - f[r]
    return r, c, vals, f, g, 0


# --- private stabilised Sinkhorn for initial duals ------------------------------------


def _sinkhorn_duals(a, b, C, eps_list, n_iter, omega=None, absorb=None):
    """Approximate dual potentials by eps-scaled, over-relaxed, absorbed Sinkhorn (host).

    Convention P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), so that (f, g) tend to
    LP duals as eps -> 0. Each level runs ``n_iter`` over-relaxed scaling updates
    (``log u <- (1 - omega) log u + omega log(1 / K(b v))``), absorbing the scalings
    into (f, g) and recomputing the kernel every ``absorb`` iterations so that nothing
    overflows. Returns (f, g); stops early (keeping the last finite potentials) if the
    kernel underflows.
    """
    omega = _SINKHORN_OMEGA if omega is None else omega
    absorb = _SINKHORN_ABSORB if absorb is None else absorb
    n, m = C.shape
    f = np.zeros(n)
    g = np.zeros(m)
    # the kernel in float32: the potentials only rank entries, and the matrix-vector
    # products (the bulk of the work) run twice as fast
    K = np.empty(C.shape, dtype=np.float32)
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    for eps in eps_list:
        done = 0
        while done < n_iter:
            np.subtract(f[:, None], C, out=K, casting="same_kind")
            K += g[None, :].astype(np.float32)
            K *= np.float32(1.0 / eps)
            np.exp(K, out=K)
            lu = np.zeros(n, dtype=np.float32)
            lv = np.zeros(m, dtype=np.float32)
            with np.errstate(all="ignore"):
                for _ in range(min(absorb, n_iter - done)):
                    lu = (1.0 - omega) * lu - omega * np.log(K @ (b * np.exp(lv)))
                    lv = (1.0 - omega) * lv - omega * np.log(K.T @ (a * np.exp(lu)))
            done += absorb
            if not (np.all(np.isfinite(lu)) and np.all(np.isfinite(lv))):
                return f, g
            f += eps * lu
            g += eps * lv
    return f, g


_BLAS_CONTROLLER = None


def _single_thread_blas():
    """Context limiting BLAS to one thread (threadpoolctl).

    The Sinkhorn warm start is hundreds of small matrix-vector products; with BLAS
    threads they lose badly to thread hand-offs on a busy machine (measured 5-7x slower
    wall time at n = 1000 on a loaded 2-core host), and gain little on an idle one.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController()
        except Exception:  # pragma: no cover - BLAS libraries not inspectable: no limit
            _BLAS_CONTROLLER = False
    if not _BLAS_CONTROLLER:
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


def _eps_schedule(C):
    """Geometric eps levels from 0.05 down to a final eps matched to the resolution of C
    (0.12 x the median gap between the smallest and third-smallest entry of a row, on a
    sample of rows; clipped to [1e-4, 1e-2]); C is scaled to max 1."""
    if _SINKHORN_EPS is not None:
        return _SINKHORN_EPS
    n, m = C.shape
    if m < 3:
        return (0.05, 0.01)
    rows = np.linspace(0, n - 1, min(n, 256)).astype(np.int64)
    P = np.partition(C[rows], 2, axis=1)[:, :3]
    P.sort(axis=1)
    final = float(np.clip(0.12 * np.median(P[:, 2] - P[:, 0]), 1e-4, 1e-2))
    levels = max(1, math.ceil(math.log(0.05 / final) / math.log(2.7)))
    return tuple(np.geomspace(0.05, final, levels + 1).tolist())


def _topk_rows(R, k):
    """Column indices of the k smallest entries of each row of R (unordered)."""
    m = R.shape[1]
    if k >= m:
        return np.broadcast_to(np.arange(m), R.shape)
    return np.argpartition(R, k - 1, axis=1)[:, :k]


def _greedy(a, b, r, c, w):
    """A feasible plan using the candidate edges (r, c) in increasing order of w first
    (each step saturates a row or a column), the residual mass routed by the
    north-west-corner rule. Returns the plan's (rows, cols)."""
    order = np.argsort(w, kind="stable")
    ra = a.tolist()
    rb = b.tolist()
    out_r, out_c = [], []
    tiny = 1e-15
    left = len(ra)  # rows not yet saturated
    for i, j in zip(r[order].tolist(), c[order].tolist()):
        ai = ra[i]
        if ai <= tiny:
            continue
        bj = rb[j]
        if bj <= tiny:
            continue
        out_r.append(i)
        out_c.append(j)
        if ai <= bj:
            ra[i] = 0.0
            rb[j] = bj - ai
            left -= 1
            if left == 0:
                break
        else:
            ra[i] = ai - bj
            rb[j] = 0.0
    ra = np.asarray(ra)
    rb = np.asarray(rb)
    ir = np.flatnonzero(ra > tiny)
    jr = np.flatnonzero(rb > tiny)
    if ir.size and jr.size:
        i2, j2 = _northwest(ra[ir], rb[jr])
        out_r.extend(ir[i2].tolist())
        out_c.extend(jr[j2].tolist())
    return np.asarray(out_r, dtype=np.int64), np.asarray(out_c, dtype=np.int64)


def _northwest(a, b):
    """North-west corner rule: a feasible plan's support (n + m - 1 entries)."""
    n, m = len(a), len(b)
    ca = np.cumsum(a)
    cb = np.cumsum(b)
    ca[-1] = cb[-1] = max(ca[-1], cb[-1])
    # breakpoints of the merged cumulative masses
    t = np.unique(np.concatenate([ca, cb]))
    mid = np.concatenate([[0.0], t[:-1]])
    i = np.minimum(np.searchsorted(ca, mid, side="right"), n - 1)
    j = np.minimum(np.searchsorted(cb, mid, side="right"), m - 1)
    return i, j


class _Model:
    """A live HiGHS model of the transport LP restricted to a set of columns."""

    def __init__(self, a, b, C, rows, cols):
        import highspy

        self.n, self.m = C.shape
        self.C = C
        # the bare core class: the Python wrapper prints a banner and installs callbacks
        self.h = h = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("primal_feasibility_tolerance", _HIGHS_TOL)
        h.setOptionValue("dual_feasibility_tolerance", _HIGHS_TOL)
        h.setOptionValue("threads", 1)
        for k, v in _HIGHS_OPTIONS.items():
            h.setOptionValue(k, v)
        self.inf = highspy.kHighsInf
        self.key = np.empty(0, dtype=np.int64)  # flat indices of the columns in the model
        n, m = self.n, self.m
        rhs = np.concatenate([a, b])
        h.addRows(
            n + m, rhs, rhs, 0, np.zeros(n + m, dtype=np.int32),
            np.empty(0, dtype=np.int32), np.empty(0),
        )  # fmt: skip
        self.add(rows, cols)

    def add(self, rows, cols):
        """Add columns (i, j) not yet in the model; returns how many were new."""
        m = self.m
        key = np.unique(rows.astype(np.int64) * m + cols)
        new = key[~np.isin(key, self.key, assume_unique=True)] if self.key.size else key
        if new.size == 0:
            return 0
        self.key = np.union1d(self.key, new) if self.key.size else new
        r = new // m
        c = new % m
        k = new.size
        idx = np.empty(2 * k, dtype=np.int32)
        idx[0::2] = r
        idx[1::2] = self.n + c
        starts = np.arange(0, 2 * k, 2, dtype=np.int32)
        self.h.addCols(
            k, self.C[r, c], np.zeros(k), np.full(k, self.inf), 2 * k, starts, idx, np.ones(2 * k)
        )
        self._cols = np.concatenate([getattr(self, "_cols", np.empty(0, np.int64)), new])
        return int(k)

    def set_tree_basis(self, f, g, prefer=None):
        """Start from the basis of a minimum spanning tree of the model's columns, weighted
        by their reduced costs under (f, g) (an 'alien' basis: HiGHS repairs it if needed)."""
        import highspy
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import minimum_spanning_tree

        n, m = self.n, self.m
        cols = self._cols
        r, c = cols // m, cols % m
        w = self.C[r, c] - f[r] - g[c]
        w = w - w.min() + 1e-6  # MST treats 0 as no edge
        if prefer is not None:
            w[np.isin(cols, prefer[0].astype(np.int64) * m + prefer[1])] = 1e-12
        # the graph in CSR form built directly (self.key is sorted: row-major, no
        # duplicates), skipping scipy's COO -> CSR conversion and its checks
        order = np.argsort(cols, kind="stable")
        indptr = np.zeros(n + m + 1, dtype=np.int32)
        np.cumsum(np.bincount(r, minlength=n), out=indptr[1 : n + 1])
        indptr[n + 1 :] = indptr[n]
        G = csr_matrix((w[order], (n + c[order]).astype(np.int32), indptr), shape=(n + m, n + m))
        T = minimum_spanning_tree(G)
        trow = np.repeat(np.arange(n + m), np.diff(T.indptr))
        tcol = T.indices
        lo, hi = np.minimum(trow, tcol), np.maximum(trow, tcol)
        tkey = lo.astype(np.int64) * m + (hi - n)
        pos = np.searchsorted(self.key, tkey)  # self.key is sorted, cols in insertion order
        basic = np.zeros(cols.size, dtype=bool)
        basic[order[pos]] = True
        L, B = highspy.HighsBasisStatus.kLower, highspy.HighsBasisStatus.kBasic
        basis = highspy.HighsBasis()
        basis.col_status = [B if x else L for x in basic.tolist()]
        rs = [L] * (n + m)
        rs[-1] = B
        basis.row_status = rs
        basis.alien = True
        basis.valid = True
        self.h.setBasis(basis)

    def solve(self):
        import highspy

        self.h.run()
        st = self.h.getModelStatus()
        if st != highspy.HighsModelStatus.kOptimal:
            _fail("sparse", st, self.h.modelStatusToString(st))
        sol = self.h.getSolution()
        y = np.asarray(sol.row_dual)
        return y[: self.n].copy(), y[self.n :].copy()

    def primal(self):
        x = np.asarray(self.h.getSolution().col_value)
        nz = np.flatnonzero(x > 0)
        key = self._cols[nz]
        return key // self.m, key % self.m, x[nz]


def _price(C, f, g, thresh, k_row, block=None):
    """Most violated entries (reduced cost < -thresh): up to k_row per row, plus the
    most violated row of each column. Row blocks bound the memory to block*m."""
    n, m = C.shape
    if block is None:
        block = max(1, min(n, (1 << 22) // max(m, 1)))
    rows, cols = [], []
    col_best = np.full(m, -thresh)
    col_arg = np.full(m, -1, dtype=np.int64)
    worst = 0.0
    for s in range(0, n, block):
        e = min(n, s + block)
        R = C[s:e] - f[s:e, None]
        R -= g[None, :]
        bmin = float(R.min())
        worst = min(worst, bmin)
        if bmin >= -thresh:
            continue
        mask = R < -thresh
        if np.count_nonzero(mask) <= k_row * (e - s):  # few violators: take them all
            ii, jj = np.nonzero(mask)
            rows.append(ii + s)
            cols.append(jj)
            continue
        kk = min(k_row, m)
        J = _topk_rows(R, kk)
        v = np.take_along_axis(R, J, axis=1)
        ok = v < -thresh
        I = np.broadcast_to(np.arange(s, e)[:, None], J.shape)
        rows.append(I[ok])
        cols.append(J[ok])
        i_best = np.argmin(R, axis=0)
        v_best = R[i_best, np.arange(m)]
        upd = v_best < col_best
        col_best[upd] = v_best[upd]
        col_arg[upd] = i_best[upd] + s
    has = col_arg >= 0
    rows.append(col_arg[has])
    cols.append(np.flatnonzero(has))
    return np.concatenate(rows), np.concatenate(cols), -worst


def _candidates(C, f, g, k, block=None):
    """(rows, cols) of the k smallest reduced costs C_ij - f_i - g_j of every row and
    every column, computed in blocks of about 4M entries."""
    n, m = C.shape
    out_r, out_c = [], []
    kr, kc = min(k, m), min(k, n)
    bs = max(1, min(n, (1 << 22) // max(m, 1)))
    for s in range(0, n, bs):
        e = min(n, s + bs)
        R = C[s:e] - f[s:e, None]
        R -= g[None, :]
        J = _topk_rows(R, kr)
        out_r.append(np.repeat(np.arange(s, e), kr))
        out_c.append(J.ravel())
    bs = max(1, min(m, (1 << 22) // max(n, 1)))
    for s in range(0, m, bs):
        e = min(m, s + bs)
        R = C[:, s:e].T - g[s:e, None]
        R -= f[None, :]
        I = _topk_rows(R, kc)
        out_r.append(I.ravel())
        out_c.append(np.repeat(np.arange(s, e), kc))
    return np.concatenate(out_r), np.concatenate(out_c)


def _solve_sparse(a, b, C, tol, *, max_rounds=100, extra=None):
    n, m = C.shape
    # 1. approximate duals: eps-scaled, over-relaxed Sinkhorn
    # small problems: fewer iterations per level (the LP solves dominate; measured
    # 6-16% faster end to end for n = 64-200)
    if n * m <= _SMALL_SINKHORN_NM:
        n_iter = _SINKHORN_ITER // 2
    else:
        n_iter = _SINKHORN_ITER if n * m <= 4_000_000 else _SINKHORN_ITER + 10
    with _single_thread_blas():
        f, g = _sinkhorn_duals(a, b, C, _eps_schedule(C), n_iter)
    # 2. candidate support: the k smallest reduced costs of every row and column, a
    #    feasible plan (greedy on the candidates by reduced cost, residual mass by the
    #    north-west corner rule) so the restricted LP is feasible, and the optimal
    #    permutation when given
    # larger problems: more initial candidates (Sinkhorn at the final eps resolves the
    # optimal support less sharply), measured best at 5 (n <= 2000) to 10 (n = 5000)
    k_init = _K_INIT if n * m <= 4_000_000 else (_K_INIT + 3 if n * m <= 12_000_000 else _K_INIT + 5)
    r0, c0 = _candidates(C, f, g, k_init)
    if _GREEDY and n * m > _GREEDY_MIN:
        ig, jg = _greedy(a, b, r0, c0, C[r0, c0] - f[r0] - g[c0])
    else:
        ig, jg = _northwest(a, b)
    r0 = np.concatenate([r0, ig])
    c0 = np.concatenate([c0, jg])
    if extra is not None:
        r0 = np.concatenate([r0, extra[0]])
        c0 = np.concatenate([c0, extra[1]])
    model = _Model(a, b, C, r0, c0)
    # 3. a starting basis: the minimum spanning tree of the candidates weighted by their
    #    reduced costs (cuts the first dual-simplex solve's iterations several-fold)
    model.set_tree_basis(f, g)
    # 4. price every entry with the LP duals, add the most violated, re-solve warm
    thresh = tol
    for rnd in range(1, max_rounds + 1):
        f, g = model.solve()
        r, c, viol = _price(C, f, g, thresh, _K_PRICE)
        if _TRACE is not None:
            info = model.h.getInfo()
            _TRACE.append((rnd, model.key.size, info.simplex_iteration_count, info.objective_function_value, viol))
        if viol <= thresh or r.size == 0:
            rr, cc, vv = model.primal()
            return rr, cc, vv, f, g, rnd
        if model.add(r, c) == 0:
            # every violator is already in the model: the violation is within HiGHS's own
            # dual feasibility tolerance (only possible for tol < 1e-10)
            rr, cc, vv = model.primal()
            return rr, cc, vv, f, g, rnd
        if rnd == 1:
            for k, v in _HIGHS_RESOLVE.items():
                model.h.setOptionValue(k, v)
    raise RuntimeError(
        f"exact EMD (sparse) did not certify optimality in max_rounds={max_rounds} pricing "
        f"rounds (largest violation {viol:.3g}); raise max_rounds or use method='linprog'"
    )


# ---------------------------------------------------------------------------------------
# one pair, with zero bins and scaling handled
# ---------------------------------------------------------------------------------------


def _solve_pair(a, b, M, method, tol, max_rounds, cache=None):
    """Solve one pair on the host; returns (rows, cols, vals, f, g, method, rounds)."""
    n, m = M.shape
    ia = np.flatnonzero(a > 0)
    jb = np.flatnonzero(b > 0)
    sa = a[ia].sum()
    ar = a[ia] / sa
    br = b[jb] / b[jb].sum()
    full = ia.size == n and jb.size == m
    Mr = M if full else M[np.ix_(ia, jb)]
    scale = float(Mr.max()) if Mr.size else 0.0
    if scale <= 0.0 or not math.isfinite(scale):
        scale = 1.0
    C = Mr * (1.0 / scale) if scale != 1.0 else Mr
    nr, mr = C.shape
    if method == "auto":
        if 1 < nr == mr <= _ASSIGN_MAX and _is_uniform(ar) and _is_uniform(br):
            method = "assignment"  # 1.3-1.8x POT up to n = 54, where "full" is 2.6-14x
        elif nr * mr <= _FULL_MAX:
            method = "full"
        else:
            method = "sparse"
    if method == "assignment":
        if nr != mr or not (_is_uniform(ar) and _is_uniform(br)):
            raise ValueError(
                "method='assignment' needs uniform histograms a and b with the same number of "
                f"nonzero bins (got {nr} and {mr}); use method='sparse' or 'auto'"
            )
        r, c, v, f, g, rounds = _solve_assignment(ar, br, C, tol)
    elif method == "linprog":
        r, c, v, f, g, rounds = _solve_linprog(ar, br, C)
    elif method == "full":
        key = None if full else (ia.tobytes(), jb.tobytes())
        r, c, v, f, g, rounds = _solve_full(ar, br, C, cache, key)
    else:
        r, c, v, f, g, rounds = _solve_sparse(ar, br, C, tol, max_rounds=max_rounds)
    # back to the caller's units and bins
    v = v * sa
    f = f * scale
    g = g * scale
    r = ia[r]
    c = jb[c]
    if not full:
        F = np.zeros(n)
        G = np.zeros(m)
        F[ia] = f
        G[jb] = g
        if jb.size < m:  # dropped columns: g_j = min over kept rows of M_ij - f_i
            drop = np.setdiff1d(np.arange(m), jb)
            G[drop] = np.min(M[np.ix_(ia, drop)] - f[:, None], axis=0)
        if ia.size < n:  # dropped rows: f_i = min over all columns of M_ij - g_j
            drop = np.setdiff1d(np.arange(n), ia)
            F[drop] = np.min(M[drop] - G[None, :], axis=1)
        f, g = F, G
    return r, c, v, f, g, method, rounds


def _certify(M, f, g, block=None):
    """max(0, max_ij f_i + g_j - M_ij) over the whole matrix, in row blocks."""
    n, m = M.shape
    if block is None:
        block = max(1, min(n, (1 << 22) // max(m, 1)))
    worst = 0.0
    for s in range(0, n, block):
        e = min(n, s + block)
        R = M[s:e] - f[s:e, None]
        R -= g[None, :]
        worst = min(worst, float(R.min()))
    return -worst


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def emd(a, b, M, *, method: str = "auto", tol: float = 1e-9, max_rounds: int = 100, **kwargs) -> EMDResult:
    r"""Exact earth mover's distance with the optimal plan and certified dual potentials.

    Solves the Kantorovich linear program

    .. math::

        \min_{P \ge 0} \langle P, M\rangle \quad \text{s.t.}\quad P 1_m = a,\
        P^\top 1_n = b

    and its dual :math:`\max \langle a, f\rangle + \langle b, g\rangle` s.t.
    :math:`f_i + g_j \le M_{ij}`, exactly (a simplex basis, not a
    regularised approximation). The returned potentials certify optimality:
    ``max_violation`` is the largest :math:`f_i + g_j - M_{ij}` over all of
    ``M`` and :math:`\langle a, f\rangle + \langle b, g\rangle` equals ``cost``.

    Parameters
    ----------
    a : array, shape (..., n)
        Source histograms (last axis = bins, leading axes = batch), >= 0.
    b : array, shape (..., m)
        Target histograms with the same total mass as ``a`` (relative
        tolerance 1e-6 for float64, 1e-4 for float32). Before solving, ``b``
        is rescaled to the total of ``a`` so that the LP is exactly feasible.
    M : array, shape (n, m)
        Ground cost, finite and >= 0, shared by all pairs.
    method : {"auto", "full", "sparse", "linprog", "assignment"}
        ``"linprog"``: the full LP with :func:`scipy.optimize.linprog`
        (HiGHS), the reference, O(nm) variables; ``"full"``: the same LP
        directly in ``highspy``, the model reused across the pairs of a batch
        (and across calls with the same ``M``) with only the masses changed;
        ``"sparse"``: certified column
        generation on ``highspy`` (memory O(nm) for ``M`` only, no dense
        constraint matrix); ``"assignment"``: Hungarian-type solver for
        uniform ``a``, ``b`` with ``n == m``; ``"auto"``: the fastest exact
        path (assignment for uniform square problems up to ``n = 200``, else
        full for ``n*m <= 3000``, else sparse).
    tol : float
        Pricing tolerance of ``"sparse"``, relative to ``max(M)``: the solve
        stops when no reduced cost :math:`M_{ij} - f_i - g_j` is below
        ``-tol * max(M)``.
    max_rounds : int
        Maximum pricing rounds of ``"sparse"``.

    Returns
    -------
    EMDResult
        ``cost`` (batch shape), ``plan`` (batch + (n, m), built on access),
        ``f`` (batch + (n,)), ``g`` (batch + (m,)), ``method``, ``status``,
        ``max_violation`` (batch shape), ``n_rounds``; arrays in the namespace,
        dtype and device of the inputs.

    Raises
    ------
    ValueError
        negative, NaN or infinite masses or costs; unequal total masses (the
        message shows both sums); shapes of ``a``, ``b``, ``M`` that do not
        match; empty or all-zero histograms; ``M`` not 2-D; unknown method;
        ``"assignment"`` on non-uniform histograms.
    TypeError
        non-numeric or complex input, arrays from different libraries.
    RuntimeError
        the LP solver failed (the message carries HiGHS's status).

    Notes
    -----
    Zero-mass bins are dropped before solving and restored afterwards with
    zero plan rows/columns and potentials :math:`g_j = \min_i M_{ij} - f_i`
    (dropped columns), then :math:`f_i = \min_j M_{ij} - g_j` (dropped rows),
    so that :math:`f_i + g_j \le M_{ij}` holds everywhere. The potentials are
    normalised so that :math:`\langle a, f\rangle = \langle b, g\rangle`.
    All solvers run on the host in float64; ``M`` is divided by its maximum
    and the masses by their total for the solve, and the results scaled back.

    References
    ----------
    Kantorovich, L. (1942). On the translocation of masses.
    Dantzig, G. & Wolfe, P. (1960). Decomposition principle for linear programs
    (column generation).

    Examples
    --------
    >>> import numpy as np
    >>> from otcore._exact import emd
    >>> a = np.array([0.5, 0.5]); b = np.array([0.25, 0.75])
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = emd(a, b, M)
    >>> print(f"{float(res.cost):.4f}")
    0.2500
    >>> res.plan
    array([[0.25, 0.25],
           [0.  , 0.5 ]])
    >>> print(float(res.max_violation) <= 1e-12)
    True
    """
    method = check_choice("method", method, _METHODS)
    tol = check_scalar("tol", tol, nonneg=True)
    max_rounds = check_int("max_rounds", max_rounds, minimum=1)
    reject_pot_keywords("emd", kwargs, extra={"numItermax": "drop it: the exact solver has no iteration cap"})
    xp, a_, b_, M_ = check_histograms(a, b, M)
    dtype = a_.dtype
    dev = _device(a_)
    bshape = batch_shape("a", a_.shape[:-1], "b", b_.shape[:-1])
    n, m = M_.shape
    # the one transfer to the host
    A = np.asarray(to_host(a_), dtype=np.float64)
    B = np.asarray(to_host(b_), dtype=np.float64)
    Mh = np.ascontiguousarray(to_host(M_), dtype=np.float64)
    A = np.broadcast_to(A, bshape + (n,)).reshape(-1, n)
    B = np.broadcast_to(B, bshape + (m,)).reshape(-1, m)
    N = A.shape[0]
    cost = np.empty(N)
    F = np.empty((N, n))
    G = np.empty((N, m))
    viol = np.empty(N)
    coo = []
    methods = []
    rounds = 0
    cache = _model_cache(Mh) if method in ("auto", "full") else None
    for k in range(N):
        ak, bk = A[k], B[k]
        bk = bk * (ak.sum() / bk.sum())
        r, c, v, f, g, used, nr = _solve_pair(ak, bk, Mh, method, tol, max_rounds, cache)
        # normalise: <a, f> = <b, g>
        s = ak.sum()
        shift = (bk @ g - ak @ f) / (2.0 * s)
        f = f + shift
        g = g - shift
        coo.append((r, c, v))
        cost[k] = float(v @ Mh[r, c])
        F[k], G[k] = f, g
        viol[k] = _certify(Mh, f, g)
        methods.append(used)
        rounds = max(rounds, nr)
    # the one transfer back
    def out(x, shape):
        return from_host(np.reshape(x, shape), xp, device=dev, dtype=dtype)

    status = "optimal" if not bshape else tuple("optimal" for _ in range(N))
    return EMDResult(
        cost=out(cost, bshape),
        f=out(F, bshape + (n,)),
        g=out(G, bshape + (m,)),
        method=methods[0],
        status=status,
        max_violation=out(viol, bshape),
        n_rounds=rounds,
        _coo=tuple(coo),
        _shape=bshape + (n, m),
        _xp=xp,
        _device=dev,
        _dtype=dtype,
    )


def emd2(a, b, M, **kwargs) -> Array:
    """The exact earth mover's distance only: ``emd(a, b, M, **kwargs).cost``.

    Same arguments, conventions and errors as :func:`emd`; the plan is never
    built densely.

    Returns
    -------
    array, shape = broadcast batch shape of ``a`` and ``b`` (0-d unbatched)

    Examples
    --------
    >>> import numpy as np
    >>> from otcore._exact import emd2
    >>> x = np.arange(4.0)
    >>> M = np.abs(x[:, None] - x[None, :])
    >>> print(f"{float(emd2(np.array([1., 0, 0, 0]), np.array([0., 0, 0, 1]), M)):.4f}")
    3.0000
    """
    return emd(a, b, M, **kwargs).cost
