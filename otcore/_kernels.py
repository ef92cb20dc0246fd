r"""Kernel objects of the Sinkhorn engine: the cost, seen through log-domain operations.

The Sinkhorn engine (:mod:`otcore._sinkhorn`) reads the cost ``C`` (n, m) of a
problem only through a *kernel object* (the role OTT-JAX's ``Geometry`` plays).
Potentials are batched: ``f`` (N, n), ``g`` (N, m); the plan convention is
fixed,

.. math::

    P_{ij} = \exp\big((f_i + g_j - C_{ij}) / \varepsilon\big)

on the supports of ``a`` and ``b`` (entries of ``f``/``g`` equal to ``-inf``
mark zero-mass bins and give zero rows/columns).

:class:`Kernel` is the protocol; :class:`DenseKernel` is the engine's kernel
for a cost matrix shared by the batch. The lazy point-cloud kernel
(:mod:`otcore._pointcloud`) implements the same methods. Kernels are plain
objects created per call; no cache outlives them.
"""

from __future__ import annotations

import copy
import math
from typing import Protocol

from otcore._array import Array

__all__ = ["DenseKernel", "Kernel"]


class Kernel(Protocol):
    """What the log-domain Sinkhorn step needs from a cost (the kernel protocol).

    ``h`` arguments are batched potentials; entries equal to ``-inf`` (the
    potentials of zero-mass bins, masked by the engine) contribute nothing. A
    row/column whose every term is ``-inf`` gives ``+inf`` (the engine never
    passes one: every histogram has positive mass).

    The balanced log step (the engine's ``_log_step``), with ``f~ = f`` where
    ``a > 0`` and ``-inf`` elsewhere (``g~`` likewise)::

        g = eps * log(b) + softmin_cols(f~, eps)   # column marginals exact after this
        f = eps * log(a) + softmin_rows(g~, eps)

    where ``eps * log`` is taken as 0 on zero-mass bins, so that those bins get
    the finite c-transform potentials.

    Optional: ``take(index) -> Kernel``, the kernel restricted to the pairs
    ``index`` (an integer array) for kernels holding per-pair data; the engine
    drops converged pairs from the active set only through it (kernels without
    it, or whose data is shared by the batch, keep every pair).
    """

    shape: tuple[int, int]  # (n, m)

    def cost_range(self) -> float | None:
        """``max C - min C`` as a host float (None when it cannot be read, e.g. in jit)."""

    def softmin_rows(self, h: Array, eps: float) -> Array:
        """``h`` (N, m) -> (N, n): ``-eps * log sum_j exp((h_j - C_ij) / eps)``."""

    def softmin_cols(self, h: Array, eps: float) -> Array:
        """``h`` (N, n) -> (N, m): ``-eps * log sum_i exp((h_i - C_ij) / eps)``."""

    def transport_cost(self, f: Array, g: Array, eps: float) -> Array:
        """(N,): ``sum_ij P_ij C_ij`` for ``P_ij = exp((f_i + g_j - C_ij) / eps)``."""

    def marginals(self, f: Array, g: Array, eps: float) -> tuple[Array, Array]:
        """``((N, n), (N, m))``: row and column sums of ``P``."""

    def plan(self, f: Array, g: Array, eps: float) -> Array:
        """Dense ``P`` (N, n, m); a lazy kernel may refuse (ValueError naming the memory)."""


# Elements of the (pairs, n, m) temporaries of the exact log-sum-exp fallback.
_EXACT_BLOCK = 1 << 21
# Largest per-pair absorbed kernel (N, n, m) in elements: a batch that the
# shared kernel cannot represent switches to one absorbed kernel per pair
# when it fits (1024 pairs x 64 x 64 bins = 4M elements) ...
_PAIR_BUDGET = 1 << 23
# ... and when at least this fraction of its pairs needed the exact fallback.
_PAIR_SWITCH = 0.125
# Re-absorb the potentials into the kernel when their spread around the
# absorbed ones (in units of eps, per pair) exceeds this.
_ABSORB_TAU = {"float64": 40.0, "float32": 12.0}


def _dname(xp, dtype) -> str:
    return "float32" if dtype == xp.float32 else "float64"


class DenseKernel:
    r"""The kernel of one cost matrix ``C`` (n, m) shared by every pair of the batch.

    ``softmin_rows``/``softmin_cols`` are one matrix product per call
    (Schmitzer 2019's absorption): with centres ``alpha`` (n,), ``beta`` (m,)
    (batch means of earlier potentials) and the absorbed kernel
    ``K = exp((alpha_i + beta_j - C_ij) / eps)``,

    .. math::

        \mathrm{softmin}_j(h)_i = \alpha_i - \varepsilon\,\big(t + \log
            \textstyle\sum_j e^{y_j - t} K_{ij}\big),\quad
            y = (h - \beta)/\varepsilon,\ t = \max_j y_j,

    per pair. A row whose sum is too small to be accurate (below
    ``smallest_normal ** 0.25``), or not finite, is recomputed exactly by a
    max-shifted log-sum-exp over ``C`` for that pair, so results are exact
    for any potentials (heterogeneous batches, tiny ``eps``); the kernel is
    re-absorbed at the latest potentials when that happened or when their
    spread exceeded ``_ABSORB_TAU``.

    When one shared kernel cannot represent the batch (at least
    ``_PAIR_SWITCH`` of the pairs needed the exact fallback: e.g. one-hot
    targets with a large ``(max C - min C) / eps``) and ``N * n * m <=
    _PAIR_BUDGET``, the kernel switches to *per-pair* absorption: centres
    ``alpha`` (N, n), ``beta`` (N, m) and kernels ``K`` (N, n, m), one
    batched matrix-vector product per call; only the pairs whose sums are
    inaccurate (or whose spread exceeds ``_ABSORB_TAU``) are recomputed
    exactly and re-absorbed. ``calls`` counts the paths taken (``"shared"``,
    ``"per_pair"`` calls, ``"exact_pairs"`` pairs recomputed exactly).

    With ``lazy=True`` (inside ``jax.jit``) every call is one exact
    log-sum-exp over (N, n, m) (no value is read, no state changes).
    """

    def __init__(self, C: Array, *, xp, lazy: bool = False):
        self.C = C
        self.xp = xp
        self.lazy = lazy
        self.shape = (C.shape[0], C.shape[1])
        self._range = None
        self._eps = None  # eps of the absorbed kernel
        self._last = [None, None]  # latest potentials seen: [cols input (f), rows input (g)]
        self._stale = True
        self._gibbs = None  # (eps, K, cmin, K * C) of the scaling method
        self._pp = None  # per-pair absorption: alpha (N, n), beta (N, m), K (N, n, m), its sums (N, n), (N, m)
        self.calls = {"shared": 0, "per_pair": 0, "exact_pairs": 0}
        dt = C.dtype
        tiny = float(xp.finfo(dt).smallest_normal)
        self._thr = tiny**0.25  # smallest accurate row sum
        self._kcut = tiny**0.5  # kernel entries flushed to zero below this
        self._vcut = tiny**0.4  # scaled potentials flushed below this
        self._ulp = float(xp.finfo(dt).eps)  # mass lost to the flush must stay below ulp * sum
        self._tau = _ABSORB_TAU[_dname(xp, dt)]

    # -- protocol --------------------------------------------------------------
    def cost_range(self):
        if self.lazy:
            return None
        if self._range is None:
            xp = self.xp
            self._range = float(xp.max(self.C) - xp.min(self.C))
        return self._range

    def take(self, index):
        if self._pp is None:
            return self  # shared by the batch: nothing per pair
        xp = self.xp
        new = copy.copy(self)
        new._pp = tuple(xp.take(x, index, axis=0) for x in self._pp)
        new._last = [None if x is None else xp.take(x, index, axis=0) for x in self._last]
        return new

    def softmin_rows(self, h, eps):
        return self._softmin(h, eps, rows=True)[0]

    def softmin_cols(self, h, eps):
        return self._softmin(h, eps, rows=False)[0]

    def marginals(self, f, g, eps):
        xp = self.xp
        r = xp.exp((f - self.softmin_rows(g, eps)) / eps)
        c = xp.exp((g - self.softmin_cols(f, eps)) / eps)
        return _zero_nan(xp, r), _zero_nan(xp, c)

    def gibbs(self, eps):
        """``(K, cmin)``: the scaling method's kernel ``exp(-(C - min C) / eps)`` (kept for ``eps``)."""
        if self._gibbs is None or self._gibbs[0] != eps:
            xp, C = self.xp, self.C
            cmin = xp.min(C)
            K = xp.exp(-(C - cmin) / eps)
            if type(K).__module__ == "numpy":
                import numpy as np

                K = np.ascontiguousarray(K)
            self._gibbs = (eps, K, cmin, None)
        return self._gibbs[1], self._gibbs[2]

    def transport_cost(self, f, g, eps):
        if self._gibbs is not None and self._gibbs[0] == eps and not self.lazy:
            cost = self._gibbs_cost(f, g, eps)
            if cost is not None:
                return cost
        # sum_i r_i * cbar_i: row mass times the mean cost of the row's
        # conditional plan, each accurate on its own (no over/underflow)
        xp = self.xp
        s, cbar = self._softmin(g, eps, rows=True, weighted=True)
        r = _zero_nan(xp, xp.exp((f - s) / eps))
        return xp.sum(r * cbar, axis=-1)

    def _gibbs_cost(self, f, g, eps):
        """``sum u (K*C) v`` with ``u = exp((f - cmin)/eps)``, ``v = exp(g/eps)`` (one matrix
        product); None unless every product is a normal number (then it is exact to rounding)."""
        xp = self.xp
        _, K, cmin, KC = self._gibbs
        rng = self.cost_range()
        tiny = float(xp.finfo(K.dtype).smallest_normal)
        if rng / eps > -0.5 * math.log(tiny):
            return None
        u = xp.exp((f - cmin) / eps)  # 0 on masked bins
        v = xp.exp(g / eps)
        lo, hi = tiny**0.25, tiny**-0.25
        uu = xp.where(xp.isfinite(f), u, xp.ones((), dtype=u.dtype))
        vv = xp.where(xp.isfinite(g), v, xp.ones((), dtype=v.dtype))
        if not (bool(xp.all((uu >= lo) & (uu <= hi))) and bool(xp.all((vv >= lo) & (vv <= hi)))):
            return None
        if KC is None:
            KC = K * self.C
            self._gibbs = (eps, K, cmin, KC)
        return xp.sum(u * _mm(xp, v, xp.matrix_transpose(KC)), axis=-1)

    def plan(self, f, g, eps):
        xp = self.xp
        return xp.exp((f[..., :, None] + g[..., None, :] - self.C) / eps)

    # -- implementation --------------------------------------------------------
    def _absorb(self, eps):
        """Rebuild ``K = exp((alpha_i + beta_j - C_ij) / eps)`` at the latest potentials."""
        xp, C = self.xp, self.C
        f, g = self._last
        alpha = _centre(xp, f, self.shape[0], C.dtype)
        beta = _centre(xp, g, self.shape[1], C.dtype)
        # centres missing (never seen, or every pair masked): the hard c-transform
        if alpha is None and beta is None:
            alpha = xp.zeros(self.shape[0], dtype=C.dtype)
        if alpha is None:
            beta = _fill(xp, beta, xp.min(C, axis=0))
            alpha = xp.min(C - beta[None, :], axis=1)
        elif beta is None:
            alpha = _fill(xp, alpha, xp.min(C, axis=1))
            beta = xp.min(C - alpha[:, None], axis=0)
        else:
            alpha = _fill(xp, alpha, xp.min(C, axis=1))
            beta = _fill(xp, beta, xp.min(C - alpha[:, None], axis=0))
        alpha = _fill(xp, alpha, xp.min(C - beta[None, :], axis=1))
        K = xp.exp((alpha[:, None] + beta[None, :] - C) / eps)
        zero = xp.zeros((), dtype=C.dtype)
        K = xp.where(K >= self._kcut, K, zero)
        self.alpha, self.beta, self.K = alpha, beta, K
        # sums of K over the input axis: bound the mass lost to flushed V entries
        self.Ksum = (xp.sum(K, axis=1), xp.sum(K, axis=0))  # (n,) for rows, (m,) for cols
        self.KT = xp.matrix_transpose(K)
        self.KC = None
        self._eps = eps
        self._stale = False

    def _softmin(self, h, eps, *, rows, weighted=False):
        """(softmin, mean cost of the conditional plan or None) for ``h``."""
        xp = self.xp
        if self.lazy:
            return _exact_block(xp, self.C if rows else xp.matrix_transpose(self.C), h, eps, weighted)
        self._last[1 if rows else 0] = h
        other = self._last[0 if rows else 1]
        if other is not None and other.shape[0] != h.shape[0]:  # a shared kernel seen by a smaller batch
            self._last[0 if rows else 1] = None
        if self._pp is not None:
            if self._eps == eps and self._pp[0].shape[0] == h.shape[0]:
                return self._softmin_pairs(h, eps, rows, weighted)
            self._pp = None
        self.calls["shared"] += 1
        if self._stale or self._eps != eps:
            self._absorb(eps)
        cin, cout = (self.beta, self.alpha) if rows else (self.alpha, self.beta)
        y = (h - cin) / eps
        t = xp.max(y, axis=-1, keepdims=True)
        t = xp.where(xp.isfinite(t), t, xp.zeros((), dtype=t.dtype))
        V = xp.exp(y - t)
        V = xp.where(V >= self._vcut, V, xp.zeros((), dtype=V.dtype))
        Kx = self.KT if rows else self.K  # out = V @ Kx
        R = _mm(xp, V, Kx)
        out = cout - eps * (t + xp.log(R))
        cbar = None
        if weighted:
            if self.KC is None:
                self.KC = self.K * self.C
            KCx = xp.matrix_transpose(self.KC) if rows else self.KC
            cbar = _mm(xp, V, KCx) / R
        bad = ~(R >= self._thr) | ~(R < math.inf) | (self.Ksum[0 if rows else 1] * self._vcut > R * self._ulp)
        if weighted:  # K * C overflows where large kernel entries meet large costs: those rows exactly
            bad = bad | ~(xp.abs(cbar) < math.inf)
        if bool(xp.any(bad)):
            pairs = xp.nonzero(xp.any(bad, axis=-1))[0]
            N, (n, m) = h.shape[0], self.shape
            if pairs.shape[0] >= _PAIR_SWITCH * N and N > 1 and N * n * m <= _PAIR_BUDGET:
                self._absorb_pairs(None, eps)  # this batch needs one kernel per pair
                return self._softmin_pairs(h, eps, rows, weighted)
            self.calls["exact_pairs"] += int(pairs.shape[0])
            ex, exc = _exact(xp, self.C, xp.take(h, pairs, axis=0), eps, rows, weighted)
            out = _put_rows(xp, out, pairs, ex)
            if weighted:
                cbar = _put_rows(xp, cbar, pairs, exc)
            self._stale = True
        else:
            fin = xp.isfinite(y)
            lo = xp.min(xp.where(fin, y, t), axis=-1, keepdims=True)
            if not bool(xp.all(t - lo <= self._tau)):
                self._stale = True
        return out, cbar

    def _absorb_pairs(self, pairs, eps):
        """Per-pair kernels ``K_p = exp((alpha_pi + beta_pj - C_ij) / eps)`` at the latest
        potentials, for the pairs ``pairs`` (None: all, replacing the shared kernel)."""
        xp, C = self.xp, self.C
        f, g = self._last
        if pairs is not None:
            f, g = (None if x is None else xp.take(x, pairs, axis=0) for x in (f, g))
        k = (f if f is not None else g).shape[0]
        n, m = self.shape
        nan = xp.asarray(math.nan, dtype=C.dtype)
        A = xp.full((k, n), nan) if f is None else xp.where(xp.isfinite(f), f, nan)
        B = xp.full((k, m), nan) if g is None else xp.where(xp.isfinite(g), g, nan)
        # missing centres (masked bins, potentials not seen yet): hard c-transforms
        B = _fill(xp, B, _cmin(xp, C, A, axis=1))
        A = _fill(xp, A, _cmin(xp, C, B, axis=2))
        A = _fill(xp, A, xp.zeros((), dtype=C.dtype))  # nothing seen for this pair
        B = _fill(xp, B, _cmin(xp, C, A, axis=1))
        K = xp.exp((A[:, :, None] + B[:, None, :] - C) / eps)
        K = xp.where(K >= self._kcut, K, xp.zeros((), dtype=C.dtype))
        new = (A, B, K, xp.sum(K, axis=2), xp.sum(K, axis=1))  # + sums over the input axes
        if pairs is None:
            self._pp, self._eps = new, eps
        else:
            self._pp = tuple(_set_rows(xp, x, pairs, y) for x, y in zip(self._pp, new))

    def _softmin_pairs(self, h, eps, rows, weighted):
        """The softmin through the per-pair kernels; exact for pairs they cannot represent."""
        xp = self.xp
        self.calls["per_pair"] += 1
        A, B, K, Krow, Kcol = self._pp
        cin, cout = (B, A) if rows else (A, B)
        y = (h - cin) / eps
        t = xp.max(y, axis=-1, keepdims=True)
        t = xp.where(xp.isfinite(t), t, xp.zeros((), dtype=t.dtype))
        V = xp.exp(y - t)
        V = xp.where(V >= self._vcut, V, xp.zeros((), dtype=V.dtype))
        if rows:  # R_p = K_p @ V_p, or V_p @ K_p (both contiguous batched products)
            R = xp.matmul(K, V[:, :, None])[:, :, 0]
        else:
            R = xp.matmul(V[:, None, :], K)[:, 0, :]
        out = cout - eps * (t + xp.log(R))
        cbar = None
        if weighted:
            KC = K * self.C
            cbar = (xp.matmul(KC, V[:, :, None])[:, :, 0] if rows else xp.matmul(V[:, None, :], KC)[:, 0, :]) / R
        lost = (Krow if rows else Kcol) * self._vcut > R * self._ulp  # flushed V entries could matter
        bad = xp.any(~(R >= self._thr) | ~(R < math.inf) | lost, axis=-1)
        if weighted:  # K * C can overflow (large kernel entries and costs): those pairs exactly
            bad = bad | ~xp.all(xp.abs(cbar) < math.inf, axis=-1)
        fin = xp.isfinite(y)
        lo = xp.min(xp.where(fin, y, t), axis=-1)
        stale = bad | (t[:, 0] - lo > self._tau)
        if bool(xp.any(bad)):
            pairs = xp.nonzero(bad)[0]
            self.calls["exact_pairs"] += int(pairs.shape[0])
            ex, exc = _exact(xp, self.C, xp.take(h, pairs, axis=0), eps, rows, weighted)
            out = _put_rows(xp, out, pairs, ex)
            if weighted:
                cbar = _put_rows(xp, cbar, pairs, exc)
        if bool(xp.any(stale)):
            self._absorb_pairs(xp.nonzero(stale)[0], eps)
        return out, cbar


def _cmin(xp, C, X, axis):
    """Hard c-transform over the finite entries of ``X``: ``min_i (C_ij - X_pi)`` (axis=1, X (k, n))
    or ``min_j (C_ij - X_pj)`` (axis=2, X (k, m)); NaN where ``X`` has no finite entry."""
    Xf = xp.where(xp.isfinite(X), X, xp.asarray(-math.inf, dtype=C.dtype))
    Z = C - (Xf[:, :, None] if axis == 1 else Xf[:, None, :])
    r = xp.min(Z, axis=axis)
    return xp.where(r < math.inf, r, xp.asarray(math.nan, dtype=C.dtype))


def _zero_nan(xp, x):
    return xp.where(xp.isnan(x), xp.zeros((), dtype=x.dtype), x)


def _mm(xp, X, K):
    """``X @ K`` for X (N, k); one pair as a 1-D product (BLAS gemv, much faster)."""
    if X.shape[0] == 1:
        return xp.matmul(X[0, :], K)[None, :]
    return xp.matmul(X, K)


def _centre(xp, h, k, dtype):
    """Batch mean of the finite entries of ``h`` (N, k), NaN where none; None if no ``h``."""
    if h is None:
        return None
    fin = xp.isfinite(h)
    cnt = xp.sum(xp.astype(fin, dtype), axis=0)
    tot = xp.sum(xp.where(fin, h, xp.zeros((), dtype=dtype)), axis=0)
    return tot / cnt  # NaN where cnt == 0


def _fill(xp, x, y):
    return xp.where(xp.isfinite(x), x, y)


def _put_rows(xp, out, pairs, rows):
    """``out`` with ``out[pairs] = rows`` (out of place; works in every namespace)."""
    N = out.shape[0]
    pos = xp.full((N,), -1, dtype=pairs.dtype)
    pos = _scatter(xp, pos, pairs, xp.arange(pairs.shape[0], dtype=pairs.dtype))
    mask = xp.reshape(pos >= 0, (N,) + (1,) * (out.ndim - 1))
    gathered = xp.take(rows, xp.where(pos >= 0, pos, xp.zeros((), dtype=pos.dtype)), axis=0)
    return xp.where(mask, gathered, out)


def _set_rows(xp, x, pairs, rows):
    """``x[pairs] = rows``, in place where the namespace allows it (``x`` is owned by the kernel)."""
    try:
        x[pairs] = rows
        return x
    except (TypeError, ValueError, IndexError, NotImplementedError, RuntimeError):
        return _put_rows(xp, x, pairs, rows)


def _scatter(xp, x, index, values):
    try:
        x[index] = values
        return x
    except (TypeError, ValueError, IndexError, NotImplementedError):
        import numpy as np  # array-api-strict and friends: via the host

        xh = np.asarray(x).copy()
        xh[np.asarray(index)] = np.asarray(values)
        return xp.asarray(xh)


def _exact(xp, C, h, eps, rows, weighted):
    """Exact max-shifted log-sum-exp softmin of ``h`` over ``C``, in blocks of pairs.

    Returns ``(softmin, mean cost under the row/column softmax or None)``.
    """
    Cx = C if rows else xp.matrix_transpose(C)  # (k_out, k_in)
    N = h.shape[0]
    per = max(1, _EXACT_BLOCK // max(1, Cx.shape[0] * Cx.shape[1]))
    if N <= per:
        return _exact_block(xp, Cx, h, eps, weighted)
    parts = [_exact_block(xp, Cx, h[s : s + per, :], eps, weighted) for s in range(0, N, per)]
    out = xp.concat([p[0] for p in parts], axis=0)
    cb = xp.concat([p[1] for p in parts], axis=0) if weighted else None
    return out, cb


def _exact_block(xp, Cx, h, eps, weighted):
    Z = (h[:, None, :] - Cx[None, :, :]) / eps
    mx = xp.max(Z, axis=-1, keepdims=True)
    mx = xp.where(xp.isfinite(mx), mx, xp.zeros((), dtype=mx.dtype))
    E = xp.exp(Z - mx)
    S = xp.sum(E, axis=-1)
    out = -eps * (mx[..., 0] + xp.log(S))
    cbar = xp.sum(E * Cx[None, :, :], axis=-1) / S if weighted else None
    return out, cbar
