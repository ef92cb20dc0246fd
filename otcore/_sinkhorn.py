r"""Sinkhorn distances and the Frogner gradient: batched, log-stable, array-API.

Entropy-regularised optimal transport between histograms ``a`` (..., n) and
``b`` (..., m) with one shared cost ``M`` (n, m):

.. math::

    \mathrm{OT}_\varepsilon(a, b) = \min_{P \in U(a, b)}
        \langle P, M\rangle + \varepsilon \sum_{ij} P_{ij}(\log P_{ij} - 1),

solved by Sinkhorn's matrix scaling (Cuturi 2013): :math:`P = \mathrm{diag}(u)
K \mathrm{diag}(v)` with :math:`K = e^{-M/\varepsilon}`. ``reg`` is
:math:`\varepsilon` (POT's convention); the seeds' :math:`\lambda` is
``1 / reg``. A batch of N pairs is iterated as one ``(N, n) @ (n, m)`` matrix
product per half-step (Algorithm 1 of Dhariwal & Inala, seed 000), never a
Python loop over pairs and never an ``N * n * m`` array.

Public names: :func:`sinkhorn`, :func:`sinkhorn2`, :class:`SinkhornResult`,
:data:`SINKHORN_METHODS`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import is_jax_array

from otcore._array import Array, is_lazy, is_numpy_namespace, namespace
from otcore._array import device as _device
from otcore._validate import (
    reject_pot_keywords,
    ConvergenceWarning,
    batch_shape,
    check_choice,
    check_histograms,
    check_int,
    check_scalar,
    mass_rtol,
)

__all__ = ["SINKHORN_METHODS", "SinkhornResult", "sinkhorn", "sinkhorn2"]

#: Values accepted by ``method``.
SINKHORN_METHODS = ("auto", "scaling", "log")

# Iteration cap in tolerance mode when ``n_iter`` is not given.
_DEFAULT_MAX_ITER = 10_000
# Tolerance mode reads the marginal error every this many iterations (each
# read is a device synchronisation on a GPU).
_CHECK_EVERY = 10
# ``converged`` in fixed-iteration mode (``tol=None``) means this relative
# marginal error (informational only, never warned about).
_FIXED_TOL = {"float64": 1e-6, "float32": 1e-4}
# "auto" uses the scaling method while (max(M) - min(M)) / reg stays below this
# (u, v, K then stay far from overflow/underflow); log-stable above.
_AUTO_RATIO = {"float64": 200.0, "float32": 25.0}
# Log method: absorb the scalings into the kernel when |log u|, |log v|
# (relative to the absorbed potentials) exceed this.
_ABSORB_TAU = {"float64": 30.0, "float32": 10.0}
# Log method inside jit (no value checks): absorb on this fixed schedule.
_LAZY_ABSORB_EVERY = 10
# Batched log method: switch to per-pair kernels when the potentials of the
# pairs differ (in units of reg) by more than this around their mean.
_HETERO_TAU = {"float64": 150.0, "float32": 20.0}
# On a GPU the log method checks for absorption every iteration only when
# (max(M) - min(M)) / reg exceeds this (else every _CHECK_EVERY iterations).
_SYNC_RATIO = 1000.0
# Per-pair kernels are built for blocks of at most this many elements.
_CHUNK = 1 << 22


def _dtype_name(xp, dtype) -> str:
    return "float32" if dtype == xp.float32 else "float64"


@dataclass(frozen=True, eq=False)
class SinkhornResult:
    """Result of :func:`sinkhorn` (a frozen record; ``plan`` computed on request).

    Attributes
    ----------
    cost : array, batch shape
        The Sinkhorn distance :math:`\\langle P, M\\rangle` of the computed plan.
    reg_cost : array, batch shape
        :math:`\\mathrm{OT}_\\varepsilon = \\langle P, M\\rangle + \\varepsilon
        \\sum P(\\log P - 1)`, evaluated by the dual formula
        :math:`\\langle a, f\\rangle + \\langle b, g\\rangle - \\varepsilon\\,
        \\mathrm{sum}(b)` (equal at convergence, and only second-order
        sensitive to the remaining marginal error).
    f, g : arrays, batch + (n,), batch + (m,)
        Dual potentials, ``f = reg * log(u)``, ``g = reg * log(v)``, so that
        ``plan = exp((f_i + g_j - M_ij) / reg)``. Always finite; for a bin of
        zero mass they hold the c-transform
        ``-reg * log(sum_j exp((g_j - M_ij) / reg))`` (see :func:`sinkhorn`).
    grad : array, batch + (n,)
        Frogner's gradient of :math:`\\mathrm{OT}_\\varepsilon` with respect
        to ``a``: ``f - mean(f)`` (= ``reg * (log u - mean(log u))``).
    n_iter : int
        Sinkhorn iterations done (one iteration = a v- and a u-update).
    converged : bool or 0-d bool array
        Whether every pair reached the tolerance. A 0-d array only inside
        ``jax.jit`` (values cannot be read there).
    marginal_error : array, batch shape
        Relative L1 error of the row marginal, ``sum|P 1 - a| / sum(a)``
        (the column marginal is exact: the last update is a v-update).
    method : str
        The method that ran (``"scaling"`` or ``"log"``).
    reg : float
        The regularisation used.
    """

    cost: Array
    reg_cost: Array
    f: Array
    g: Array
    grad: Array
    n_iter: int
    converged: bool | Array
    marginal_error: Array
    method: str
    reg: float
    _M: Array = field(repr=False)
    _a_pos: Array = field(repr=False)
    _b_pos: Array = field(repr=False)

    @property
    def plan(self) -> Array:
        """The transport plan ``exp((f_i + g_j - M_ij) / reg)``, batch + (n, m).

        Rows (columns) of zero-mass bins are exactly zero. Computed on every
        access and not stored: for a batch it is an ``N * n * m`` array.
        """
        xp = namespace(self.f, self._M)
        f = self.f[..., :, None]
        g = self.g[..., None, :]
        P = xp.exp((f + g - self._M) / self.reg)
        return P * self._a_pos[..., :, None] * self._b_pos[..., None, :]


# ---------------------------------------------------------------------------
# the two iterations
# ---------------------------------------------------------------------------


def _scaling_numpy(a, b, K, n_iter, tol):
    """Scaling (Algorithm 1) on numpy with preallocated buffers, no temporaries.

    Returns ``u, v, uK, Kv, it, err`` with ``uK = u @ K`` (used for ``v``) and
    ``Kv = v @ K.T`` (for the row marginal ``u * Kv``). One pair runs as 1-D
    BLAS gemv calls, which are several times faster than ``(1, n) @ (n, m)``.
    """
    N, n = a.shape
    m = b.shape[1]
    u = np.full((N, n), 1.0 / n, dtype=a.dtype)
    uK = np.empty((N, m), dtype=a.dtype)
    v = np.empty((N, m), dtype=a.dtype)
    Kv = np.empty((N, n), dtype=a.dtype)
    mass = a.sum(-1)
    if N == 1:
        u1, uK1, v1, Kv1, a1, b1 = u[0], uK[0], v[0], Kv[0], a[0], b[0]

        def v_step():
            np.matmul(u1, K, out=uK1)
            np.divide(b1, uK1, out=v1)
            np.matmul(K, v1, out=Kv1)

        def u_step():
            np.divide(a1, Kv1, out=u1)

    else:
        KT = K.T

        def v_step():
            np.matmul(u, K, out=uK)
            np.divide(b, uK, out=v)
            np.matmul(v, KT, out=Kv)

        def u_step():
            np.divide(a, Kv, out=u)

    for it in range(1, n_iter + 1):
        v_step()
        if tol is not None and it % _CHECK_EVERY == 0:
            err = np.abs(u * Kv - a).sum(-1) / mass
            if np.all(err <= tol) or not np.all(np.isfinite(err)):
                return u, v, uK, Kv, it, err
        u_step()
    v_step()
    err = np.abs(u * Kv - a).sum(-1) / mass
    return u, v, uK, Kv, n_iter, err


# ---------------------------------------------------------------------------
# fused fixed-iteration kernel (optional numba)
# ---------------------------------------------------------------------------

# The fused kernel runs when numba is installed (the ``fast`` extra), the
# input is numpy (or a CPU torch tensor's numpy view), the mode is
# fixed-iteration scaling, and the problem is small: at most this many
# kernel entries n * m (above it BLAS matrix products are faster; measured
# crossover on 2 cores: fused 0.13x the time at N=100, n=m=4; 0.7-0.8x at
# n=m=32; 1.4x at N=256, n=m=64; 2.2x at N=4096, n=m=100).
_FUSED_MAX_NM = 1024
# ... and for one pair (no batch to vectorise over; BLAS gemv wins earlier).
_FUSED_MAX_NM_ONE = 256
# Pairs processed together in the fused kernel (its buffers stay in L1/L2).
_FUSED_BLOCK = 128
# None: not tried yet; False: numba unavailable or disabled.
_fused = None


def _fused_scaling_py(a, b, M, reg, n_iter, max_ratio, mass_tol, out):
    """Algorithm 1 plus the result's post-processing, fused, for numba.

    Exactly the iterates of :func:`_scaling_numpy` (``K = exp(-(M - min M) /
    reg)``; ``u = 1/n``; ``n_iter`` times ``v = b / (u K)``, ``u = a / (K
    v)``; then ``v = b / (u K)``), in the dtype of the input, pairs
    innermost (vectorised over the batch). ``out`` (flat, see
    :func:`_run_fused`) receives ``cost, reg_cost, err, f, g, grad, a > 0,
    b > 0``. Returns ``(status, max_err)``: status 0 done, 1 not run
    (``(max(M) - min(M)) / reg > max_ratio``: use the log method), 2 a
    non-finite value (under/overflow), 3 not run (the inputs need the full
    checks of :func:`otcore._validate.check_histograms`).
    """
    N, n = a.shape
    m = b.shape[1]
    dt = a.dtype
    # accept-only input checks (those of check_histograms): finite non-negative
    # masses and costs, positive totals, equal totals within mass_rtol less a
    # margin for the summation order; anything else: status 3
    m0 = M[0, 0]
    m1 = M[0, 0]
    for i in range(n):
        for j in range(m):
            x = M[i, j]
            if not (x >= 0 and x < np.inf):  # also False for NaN
                return 3, 0.0
            m0 = min(m0, x)
            m1 = max(m1, x)
    big = np.finfo(dt).max / 2
    for p in range(N):
        sa = 0.0
        for i in range(n):
            x = a[p, i]
            if not x >= 0:
                return 3, 0.0
            sa += x
        sb = 0.0
        for j in range(m):
            x = b[p, j]
            if not x >= 0:
                return 3, 0.0
            sb += x
        if not (0 < sa < big and 0 < sb < big and abs(sa - sb) <= mass_tol * max(sa, sb)):
            return 3, 0.0
    if (m1 - m0) / reg > max_ratio:
        return 1, 0.0
    K = np.empty((n, m), dtype=dt)
    KM = np.empty((n, m), dtype=dt)
    for i in range(n):
        for j in range(m):
            K[i, j] = np.exp((M[i, j] - m0) / -reg)
            KM[i, j] = K[i, j] * M[i, j]
    cost = out[0:N]
    reg_cost = out[N : 2 * N]
    err = out[2 * N : 3 * N]
    o = 3 * N
    f = out[o : o + N * n].reshape((N, n))
    o += N * n
    g = out[o : o + N * m].reshape((N, m))
    o += N * m
    grad = out[o : o + N * n].reshape((N, n))
    o += N * n
    apos = out[o : o + N * n].reshape((N, n))
    o += N * n
    bpos = out[o : o + N * m].reshape((N, m))
    B = min(N, _FUSED_BLOCK)
    aT = np.empty((n, B), dtype=dt)
    bT = np.empty((m, B), dtype=dt)
    u = np.empty((n, B), dtype=dt)
    uK = np.empty((m, B), dtype=dt)
    v = np.empty((m, B), dtype=dt)
    Kv = np.empty((n, B), dtype=dt)
    one_n = 1.0 / n
    status = 0
    max_err = 0.0
    for p0 in range(0, N, B):
        nb = min(B, N - p0)
        for i in range(n):
            for q in range(nb):
                aT[i, q] = a[p0 + q, i]
                u[i, q] = one_n
        for j in range(m):
            for q in range(nb):
                bT[j, q] = b[p0 + q, j]
        for it in range(n_iter + 1):
            # v = b / (u K)
            for j in range(m):
                for q in range(nb):
                    uK[j, q] = 0.0
                for i in range(n):
                    kij = K[i, j]
                    for q in range(nb):
                        uK[j, q] += u[i, q] * kij
                for q in range(nb):
                    v[j, q] = bT[j, q] / uK[j, q]
            # K v, then u = a / (K v)
            for i in range(n):
                for q in range(nb):
                    Kv[i, q] = 0.0
                for j in range(m):
                    kij = K[i, j]
                    for q in range(nb):
                        Kv[i, q] += kij * v[j, q]
                if it < n_iter:
                    for q in range(nb):
                        u[i, q] = aT[i, q] / Kv[i, q]
        # post-processing (as in _run_scaling and sinkhorn)
        for q in range(nb):
            p = p0 + q
            e = 0.0
            mass = 0.0
            fa = 0.0
            fs = 0.0
            for i in range(n):
                e += abs(u[i, q] * Kv[i, q] - aT[i, q])
                mass += aT[i, q]
                if aT[i, q] > 0:
                    fi = reg * np.log(u[i, q])
                    apos[p, i] = 1.0
                else:
                    fi = -reg * np.log(Kv[i, q])
                    apos[p, i] = 0.0
                fi += m0
                f[p, i] = fi
                fa += aT[i, q] * fi
                fs += fi
            fmean = fs / n
            for i in range(n):
                grad[p, i] = f[p, i] - fmean
            gb = 0.0
            gs = 0.0
            mb = 0.0
            c = 0.0
            for j in range(m):
                s = 0.0
                for i in range(n):
                    s += u[i, q] * KM[i, j]
                c += s * v[j, q]
                if bT[j, q] > 0:
                    gj = reg * np.log(v[j, q])
                    bpos[p, j] = 1.0
                else:
                    gj = -reg * np.log(uK[j, q])
                    bpos[p, j] = 0.0
                g[p, j] = gj
                gb += bT[j, q] * gj
                gs += gj
                mb += bT[j, q]
            cost[p] = c
            reg_cost[p] = fa + gb - reg * mb
            ep = e / mass
            err[p] = ep
            max_err = max(max_err, ep)
            if not (abs(c) < np.inf and abs(fs) < np.inf and abs(gs) < np.inf and abs(fa + gb) < np.inf
                    and abs(e) < np.inf):
                status = 2
    return status, max_err


def _fused_kernel():
    """The numba-compiled :func:`_fused_scaling_py`, or None without numba."""
    global _fused
    if _fused is None:
        if os.environ.get("OTCORE_DISABLE_NUMBA", "") not in ("", "0"):
            _fused = False
        else:
            try:
                import numba
            except ImportError:
                _fused = False
            else:
                _fused = numba.njit(cache=True, error_model="numpy", nogil=True)(_fused_scaling_py)
    return _fused or None


def _run_fused(a, b, M, reg, n_iter, max_ratio):
    """Fixed-iteration scaling through the fused kernel.

    Returns None when the kernel does not apply (numba missing, or the log
    method is needed), else ``(finite, max_err, cost, reg_cost, err, f, g,
    grad, a_pos, b_pos)`` (views of one buffer).
    """
    kern = _fused_kernel()
    if kern is None:
        return None
    N, n = a.shape
    m = b.shape[1]
    dt = a.dtype
    # accept totals only a margin 4 (n + m + 1) eps inside the tolerance: the
    # kernel's sequential double sums and check_histograms' sums then agree
    mass_tol = mass_rtol(np, dt) - 4.0 * (n + m + 1) * float(np.finfo(dt).eps)
    out = np.empty(N * (3 + 3 * n + 2 * m), dtype=dt)
    status, max_err = kern(a, b, M, dt.type(reg), n_iter, max_ratio, mass_tol, out)
    if status in (1, 3):
        return None
    o = 3 * N
    views = [out[:N], out[N : 2 * N], out[2 * N : o]]
    for k in (n, m, n, n, m):
        views.append(out[o : o + N * k].reshape(N, k))
        o += N * k
    return (status == 0, max_err, *views)


def _mm(xp, X, K):
    """``X @ K`` for X (N, n); one pair as a 1-D product (BLAS gemv, much faster)."""
    if X.shape[0] == 1:
        return xp.matmul(X[0, :], K)[None, :]
    return xp.matmul(X, K)


def _mmT(xp, X, K):
    """``X @ K.T`` for X (N, m)."""
    if X.shape[0] == 1:
        return xp.matmul(K, X[0, :])[None, :]
    return xp.matmul(X, xp.matrix_transpose(K))


def _scaling_xp(xp, a, b, K, n_iter, tol, dev):
    """Scaling (Algorithm 1) through ``xp`` (torch, cupy, JAX, array-api-strict)."""
    N, n = a.shape
    u = xp.full((N, n), 1.0 / n, dtype=a.dtype, device=dev)
    mass = xp.sum(a, axis=-1)
    unrolled = n_iter
    if tol is None and is_jax_array(a) and is_lazy(a):
        # inside jax.jit: one traced loop body (lax.fori_loop) instead of an
        # unrolled loop of 4 * n_iter operations: faster to compile and to run
        from jax import lax

        u = lax.fori_loop(0, n_iter, lambda _, u: a / _mmT(xp, b / _mm(xp, u, K), K), u)
        unrolled = 0
    for it in range(1, unrolled + 1):
        uK = _mm(xp, u, K)
        v = b / uK
        Kv = _mmT(xp, v, K)
        if tol is not None and it % _CHECK_EVERY == 0:
            err = xp.sum(xp.abs(u * Kv - a), axis=-1) / mass
            if bool(xp.all(err <= tol)) or not bool(xp.all(xp.isfinite(err))):
                return u, v, uK, Kv, it, err
        u = a / Kv
    uK = _mm(xp, u, K)
    v = b / uK
    Kv = _mmT(xp, v, K)
    err = xp.sum(xp.abs(u * Kv - a), axis=-1) / mass
    return u, v, uK, Kv, n_iter, err


def _run_scaling(xp, a, b, M, reg, n_iter, tol, dev, lazy=False):
    """Scaling method; returns the potentials and the quantities for the result."""
    m0 = None if lazy else xp.min(M)
    Ms = M - m0 if m0 is not None else M
    K = xp.exp(-Ms / reg)
    if is_numpy_namespace(xp):
        K = np.ascontiguousarray(K)
        u, v, uK, Kv, it, err = _scaling_numpy(a, b, K, n_iter, tol)
    else:
        u, v, uK, Kv, it, err = _scaling_xp(xp, a, b, K, n_iter, tol, dev)
    # f = reg log u; zero-mass bins get the c-transform -reg log(K v) (finite)
    f = reg * xp.log(u)
    g = reg * xp.log(v)
    if lazy or not bool(xp.all(u > 0)):
        f = xp.where(a > 0, f, -reg * xp.log(Kv))
    if lazy or not bool(xp.all(v > 0)):
        g = xp.where(b > 0, g, -reg * xp.log(uK))
    if m0 is not None:
        f = f + m0
    cost = xp.sum(_mm(xp, u, K * M) * v, axis=-1)
    return f, g, cost, it, err


def _flush(xp, K):
    """Zero the kernel entries below ``smallest_normal ** 0.8`` (1e-246 in float64).

    Their products with the scalings would be subnormal numbers, on which BLAS
    runs many times slower; their share of any row/column sum near the plan is
    below 1e-240 relative.
    """
    cut = float(xp.finfo(K.dtype).smallest_normal) ** 0.8
    return xp.where(K >= cut, K, xp.zeros((), dtype=K.dtype, device=_device(K)))


class _SharedKernel:
    """One kernel ``exp((alpha_i + beta_j - M_ij) / reg)`` shared by the batch.

    ``alpha``, ``beta`` are the batch means of the potentials (for one pair:
    the potentials themselves, i.e. Schmitzer's absorption); ``g=None`` picks
    ``beta_j = min_i (M_ij - alpha_i)`` so that every column has maximum 1.
    After an update the kernel entries are <= 1 (no overflow).
    """

    def __init__(self, xp, f, g, M, reg):
        alpha = xp.mean(f, axis=0)
        Ma = M - alpha[:, None]
        beta = xp.min(Ma, axis=0) if g is None else xp.mean(g, axis=0)
        self.xp, self.alpha, self.beta = xp, alpha, beta
        self.K = _flush(xp, xp.exp((beta[None, :] - Ma) / reg))

    def rows(self, U, W=None):  # U @ K  (N, m)
        return _mm(self.xp, U, self.K if W is None else W)

    def cols(self, V):  # V @ K.T  (N, n)
        return _mmT(self.xp, V, self.K)


class _PairKernels:
    """One absorbed kernel per pair, ``exp((f_pi + g_pj - M_ij) / reg)``, (c, n, m).

    Used for chunks of heterogeneous batches at small ``reg``, where no
    single shared kernel can represent every pair's plan in floating point.
    """

    def __init__(self, xp, f, g, M, reg):
        if g is None:
            g = xp.min(M - f[:, :, None], axis=1)
        self.xp, self.alpha, self.beta = xp, f, g
        self.K = _flush(xp, xp.exp((f[:, :, None] + g[:, None, :] - M) / reg))

    def rows(self, U, W=None):
        W = self.K if W is None else W
        return self.xp.matmul(U[:, None, :], W)[:, 0, :]

    def cols(self, V):
        return self.xp.matmul(self.K, V[:, :, None])[:, :, 0]


def _run_log(
    xp, a, b, M, reg, n_iter, tol, dev, f0=None, lazy=False, kernel=_SharedKernel, absorb_every=1
):
    """Log-stable Sinkhorn: max-shifted log-sum-exp written as matrix products.

    Per half-step, for every pair p, with an absorbed kernel
    ``Kt = exp((alpha + beta - M) / reg)``::

        x = (f - alpha) / reg;  s = max_i x          (per pair)
        g = beta + reg * (log b - s - log(exp(x - s) @ Kt))

    and symmetrically for f. The per-pair shift ``s`` makes overflow
    impossible; the kernel is rebuilt (absorption) only when ``|x|`` grows
    past ``_ABSORB_TAU`` so that products do not underflow. The iterates are
    those of the scaling method (same algorithm, other number format).

    Returns ``f, g, cost, it, err, hetero``; ``hetero`` (shared kernel only)
    means the batch's potentials became too different for one shared kernel:
    the caller continues from ``f`` with :class:`_PairKernels`.
    """
    N, n = a.shape
    dtype = a.dtype
    dname = _dtype_name(xp, dtype)
    tiny = float(xp.finfo(dtype).smallest_normal)
    tau = _ABSORB_TAU[dname]
    hetero_tau = _HETERO_TAU[dname]
    one = xp.ones((), dtype=dtype, device=dev)
    a_pos = a > 0
    b_pos = b > 0
    amask = xp.astype(a_pos, dtype)
    bmask = xp.astype(b_pos, dtype)
    loga = xp.log(xp.where(a_pos, a, one))
    logb = xp.log(xp.where(b_pos, b, one))
    mass = xp.sum(a, axis=-1)
    if f0 is None:
        f = xp.full((N, n), -reg * math.log(n), dtype=dtype, device=dev)
    else:
        f = f0
    ker = kernel(xp, f, None, M, reg)
    watch_hetero = kernel is _SharedKernel and N > 1 and not lazy
    err = None
    stopped = False
    it = 0

    def too_hetero(f, ker):
        xs = (f - ker.alpha) / reg
        spread = xp.max(xp.max(xs, axis=-1) - xp.min(xs, axis=-1))
        return not bool(spread <= hetero_tau)

    if watch_hetero and f0 is not None and too_hetero(f, ker):
        return f, None, None, 0, None, True

    def g_update(f, ker, first=False):
        x = (f - ker.alpha) / reg
        s = xp.max(x, axis=-1, keepdims=True)
        U = xp.exp(x - s)
        if not first:  # Algorithm 1 starts from u = ones/n on every bin
            U = U * amask
        S = xp.maximum(ker.rows(U), tiny)
        return ker.beta + reg * (logb - s - xp.log(S)), x

    def f_update(g, ker):
        y = (g - ker.beta) / reg
        t = xp.max(y, axis=-1, keepdims=True)
        V = xp.exp(y - t) * bmask
        R = xp.maximum(ker.cols(V), tiny)
        return ker.alpha + reg * (loga - t - xp.log(R)), y

    def row_error(f, fnew):
        # the row marginal of (f, g) is a * exp((f - fnew) / reg) on the support
        ap = xp.exp(xp.minimum(loga + (f - fnew) / reg, 80.0)) * amask
        return xp.sum(xp.abs(ap - a), axis=-1) / mass

    for it in range(1, n_iter + 1):
        g, x = g_update(f, ker, first=(it == 1 and f0 is None))
        fnew, y = f_update(g, ker)
        if tol is not None and it % _CHECK_EVERY == 0:
            err = row_error(f, fnew)
            if bool(xp.all(err <= tol)):
                stopped = True
                break
        f = fnew
        if lazy:
            if it % _LAZY_ABSORB_EVERY == 0:
                ker = kernel(xp, f, g, M, reg)
        elif it % absorb_every == 0:
            big = xp.maximum(xp.max(xp.abs(x)), xp.max(xp.abs(y)))
            if not bool(big <= tau):  # also absorbs on NaN (never expected)
                ker = kernel(xp, f, g, M, reg)
                if watch_hetero and it < n_iter and too_hetero(f, ker):
                    return f, None, None, it, None, True
    if not stopped:
        g, x = g_update(f, ker)
        fnew, y = f_update(g, ker)
        err = row_error(f, fnew)
        it = n_iter
    # zero-mass bins: the c-transform of the final g (as in the scaling method)
    f = xp.where(a_pos, f, fnew)
    # cost <P, M> through the current kernel: |x|, |y| <= tau keeps the shifted
    # products far from underflow, so no re-absorption (an n*m exp) is needed
    x = (f - ker.alpha) / reg
    y = (g - ker.beta) / reg
    s = xp.max(x, axis=-1, keepdims=True)
    t = xp.max(y, axis=-1, keepdims=True)
    U = xp.exp(x - s) * amask
    V = xp.exp(y - t) * bmask
    q = xp.sum(ker.rows(U, ker.K * M) * V, axis=-1)
    cost = q * xp.exp(s[:, 0] + t[:, 0])
    return f, g, cost, it, err, False


def _run_log_batched(xp, a, b, M, reg, n_iter, tol, dev, f0=None, lazy=False, absorb_every=1):
    """Shared-kernel log method; heterogeneous batches continue with per-pair kernels.

    Per-pair kernels are processed in chunks of at most ``_CHUNK`` elements
    (never an ``N * n * m`` array); the loop over chunks is a loop over
    blocks of pairs, each block one batched matrix product per half-step.
    """
    f, g, cost, it, err, hetero = _run_log(
        xp, a, b, M, reg, n_iter, tol, dev, f0, lazy, absorb_every=absorb_every
    )
    if not hetero:
        return f, g, cost, it, err
    done = it
    N, n = a.shape
    m = b.shape[1]
    c = max(1, _CHUNK // (n * m))
    parts = []
    for start in range(0, N, c):
        sl = slice(start, min(N, start + c))
        parts.append(
            _run_log(xp, a[sl, :], b[sl, :], M, reg, n_iter - done, tol, dev, f[sl, :],
                     kernel=_PairKernels, absorb_every=absorb_every)
        )
    f = xp.concat([p[0] for p in parts], axis=0)
    g = xp.concat([p[1] for p in parts], axis=0)
    cost = xp.concat([p[2] for p in parts], axis=0)
    err = xp.concat([p[4] for p in parts], axis=0)
    it = done + max(p[3] for p in parts)
    return f, g, cost, it, err


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def _check_eps_scaling(value):
    if value is False or value is None:
        return 0
    if value is True:
        return -1  # automatic number of stages
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"eps_scaling must be False, True or a number of stages (int >= 1), got {value!r}"
        )
    if value < 1:
        raise ValueError(f"eps_scaling must be >= 1 stages (or True/False), got {value}")
    return int(value)


def sinkhorn(
    a,
    b,
    M,
    reg,
    *,
    n_iter: int | None = None,
    tol: float | None = 1e-9,
    method: str = "auto",
    eps_scaling: bool | int = False,
    warn: bool = True,
    **kwargs,
) -> SinkhornResult:
    r"""Entropy-regularised OT (Sinkhorn distance) and Frogner's gradient.

    Solves, for every pair of the (broadcast) batch,

    .. math::

        P^\star = \arg\min_{P \ge 0,\ P1 = a,\ P^\top 1 = b}
            \langle P, M\rangle + \varepsilon \sum_{ij} P_{ij}(\log P_{ij} - 1)

    by Sinkhorn's scaling :math:`P = \mathrm{diag}(u) K \mathrm{diag}(v)`,
    :math:`K = e^{-M/\varepsilon}` (Cuturi 2013). ``reg`` is
    :math:`\varepsilon`, as in POT; the seeds' :math:`\lambda` is ``1/reg``.

    Parameters
    ----------
    a : array (..., n)
        Source histograms (last axis = bins, leading axes = batch).
    b : array (..., m)
        Target histograms, same total mass as ``a``; batch shapes broadcast
        (e.g. one ``a`` (n,) against N ``b`` (N, m)).
    M : array (n, m)
        Ground cost, shared by the batch, finite and non-negative.
    reg : float > 0
        Entropic regularisation :math:`\varepsilon` (units of ``M``). A
        Python number (static under ``jax.jit``).
    n_iter : int >= 1, optional
        With ``tol=None``: exactly this many iterations (fixed-iteration
        mode, for training loops and ``jax.jit``): exactly Algorithm 1 of
        the seed (``u = ones/n``; ``n_iter`` times ``u = a / ((b / (u K))
        K^T)``; then ``v = b / (u K)``). With a ``tol``: the iteration cap
        (default 10000; per stage with ``eps_scaling``).
    tol : float >= 0 or None
        Stop when the relative L1 marginal error
        ``sum|P 1 - a| / sum(a)`` of every pair is ``<= tol`` (read every 10
        iterations: each read is a device sync on a GPU). ``None``:
        fixed-iteration mode (needs ``n_iter``).
    method : {"auto", "scaling", "log"}
        ``"scaling"``: the classic u, v updates (fastest; can under/overflow
        for small ``reg``). ``"log"``: log-stable, never overflows: log-sum-exp
        with per-pair max shifts written as matrix products against a shared
        kernel into which the potentials are absorbed when they grow
        (Schmitzer 2019). ``"auto"``: scaling while
        ``(max(M) - min(M)) / reg <= 200`` (float64; 25 in float32), else
        log; and log again if scaling produced a non-finite value.
    eps_scaling : bool or int
        ε-scaling for small ``reg``: solve for ``reg`` values decreasing
        geometrically from ``max(M) - min(M)`` to ``reg`` (``True``: one stage
        per factor 4; an int: that many stages), warm-starting the
        potentials. Runs the log method; needs ``tol``.
    warn : bool
        Emit :class:`otcore.ConvergenceWarning` when ``tol`` is not reached.

    Returns
    -------
    SinkhornResult
        ``cost`` (:math:`\langle P, M\rangle`), ``reg_cost``
        (:math:`\mathrm{OT}_\varepsilon`), potentials ``f``, ``g``, ``grad``,
        ``n_iter``, ``converged``, ``marginal_error``, ``plan`` (on request).

    Notes
    -----
    **Frogner's gradient.** ``grad = reg * (log u - mean(log u)) = f - mean(f)``
    is the gradient of :math:`\mathrm{OT}_\varepsilon` with respect to ``a``
    projected onto zero-sum directions (the function lives on the simplex,
    so the gradient is defined up to a constant vector). The seeds (Frogner
    et al. 2015; Dhariwal & Inala, Algorithm 1, ``alpha = log(u) / λ``) use
    it as the gradient of the Sinkhorn loss.

    **Zero-mass bins.** Bins with zero mass get zero rows/columns in the
    plan (as if dropped, as Cuturi does). Their potential is the c-transform
    ``f_i = -reg log sum_j exp((g_j - M_ij)/reg)``: the limit of
    ``f_i - reg log a_i`` as ``a_i -> 0`` (the exact derivative of the
    entropic cost there is ``-inf``); it is the gradient entry of the
    KL(P | a⊗b)-regularised loss and keeps ``grad`` finite.

    **Fused kernel.** With numba installed (the ``fast`` extra), a small
    numpy problem (``n * m <= 1024``; 256 for one pair) in fixed-iteration
    scaling mode runs the checks, the iterations and the post-processing in
    one compiled call (same numbers to rounding; compiled on first use and
    cached on disk). ``OTCORE_DISABLE_NUMBA=1`` turns it off.

    **Inside jax.jit** (``n_iter`` given, ``tol=None``): no value is read,
    the scaling loop is a ``lax.fori_loop`` (the log method's is unrolled
    and absorbs on a fixed schedule) and
    ``converged`` is a 0-d boolean array (marginal error <= 1e-6, float64).
    In fixed-iteration mode no warning is emitted.

    References
    ----------
    M. Cuturi, Sinkhorn distances: lightspeed computation of optimal
    transport, NIPS 2013. C. Frogner et al., Learning with a Wasserstein
    loss, NIPS 2015. B. Schmitzer, Stabilized sparse scaling algorithms for
    entropy regularized transport problems, SIAM J. Sci. Comput. 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore._sinkhorn import sinkhorn
    >>> a = np.array([0.5, 0.5]); b = np.array([0.25, 0.75])
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = sinkhorn(a, b, M, reg=0.1)
    >>> print(f"{float(res.cost):.4f}", bool(res.converged))
    0.2500 True
    >>> print(np.round(res.plan.sum(0), 4))
    [0.25 0.75]
    >>> print(np.round(res.grad, 4))
    [ 0.5 -0.5]

    A batch: one ``a`` against three ``b``; one iteration = one matrix product.

    >>> B = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    >>> print(np.round(sinkhorn(a, B, M, 0.1).cost, 4))
    [0.   0.25 0.5 ]
    """
    reject_pot_keywords("sinkhorn", kwargs)
    if (
        tol is None
        and type(n_iter) is int
        and n_iter >= 1
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and type(M) is np.ndarray
        and (method == "auto" or method == "scaling")
        and eps_scaling is False
        and (warn is True or warn is False)
        and type(reg) in (float, int)
        and 0 < reg < math.inf
    ):
        res = _sinkhorn_fused(a, b, M, float(reg), n_iter, method)
        if res is not None:
            return res
    xp, a, b, M = check_histograms(a, b, M)
    reg = check_scalar("reg", reg, positive=True)
    n_iter = check_int("n_iter", n_iter, minimum=1, allow_none=True)
    tol = check_scalar("tol", tol, nonneg=True, allow_none=True)
    method = check_choice("method", method, SINKHORN_METHODS)
    stages = _check_eps_scaling(eps_scaling)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False, got {warn!r}")
    if tol is None and n_iter is None:
        raise ValueError(
            "n_iter must be given when tol=None (fixed-iteration mode); "
            "pass e.g. n_iter=50, or a tol to iterate to a tolerance"
        )
    lazy = _lazy(a, b, M)
    if lazy and tol is not None:
        raise ValueError(
            "inside jax.jit (or on lazy arrays) Sinkhorn cannot stop on a tolerance; "
            "pass tol=None and a fixed n_iter"
        )
    if stages and tol is None:
        raise ValueError("eps_scaling needs a tol (it is a run-to-tolerance scheme); pass tol=1e-9")
    max_iter = n_iter if n_iter is not None else _DEFAULT_MAX_ITER
    dev = _device(a)
    dname = _dtype_name(xp, a.dtype)

    # --- batch: broadcast and flatten to (N, n), (N, m) -----------------------
    n, m = a.shape[-1], b.shape[-1]
    batch = batch_shape("a", a.shape[:-1], "b", b.shape[:-1])
    N = math.prod(batch)
    a2 = xp.reshape(xp.broadcast_to(a, batch + (n,)), (N, n))
    b2 = xp.reshape(xp.broadcast_to(b, batch + (m,)), (N, m))
    if is_numpy_namespace(xp):
        a2 = np.ascontiguousarray(a2)
        b2 = np.ascontiguousarray(b2)

    # --- method ---------------------------------------------------------------
    spread = None  # read only outside jit: inside a trace every result is a tracer
    if not lazy:
        spread = float(xp.max(M) - xp.min(M))
    if stages or (method == "auto" and spread is None):
        method = "log"
    elif method == "auto":
        method = "scaling" if spread / reg <= _AUTO_RATIO[dname] else "log"

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if method == "scaling":
            f, g, cost, it, err = _run_scaling(xp, a2, b2, M, reg, max_iter, tol, dev, lazy)
            if not lazy and not _all_finite(xp, f, g, cost, err):
                # under/overflow of exp(-M/reg): redo in the log domain (same iterates)
                method = "log"
                if warn and spread is not None:
                    warnings.warn(
                        f"method='scaling' under/overflowed at reg={reg:g} "
                        f"((max(M)-min(M))/reg = {spread / reg:.3g}); switched to method='log'",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        if method == "log":
            # absorption checks read a value (a device sync): every iteration on
            # the host, and on a GPU too when reg is small relative to the costs
            host = is_numpy_namespace(xp) or "cpu" in str(dev).lower()
            small = spread is not None and spread / reg > _SYNC_RATIO
            every = 1 if (host or small) else _CHECK_EVERY
            f0 = None
            total = 0
            if stages:
                reg0 = max(spread if spread else reg, reg)
                k = stages if stages > 0 else max(1, math.ceil(math.log(reg0 / reg) / math.log(4.0)))
                regs = [reg * (reg0 / reg) ** (1.0 - (s + 1) / (k + 1)) for s in range(k)]
                stage_tol = max(tol, 1e-6 if dname == "float64" else 1e-4)
                for r in regs:
                    if r <= reg:
                        continue
                    f0, _, _, it_s, _ = _run_log_batched(
                        xp, a2, b2, M, r, max_iter, stage_tol, dev, f0=f0, absorb_every=every
                    )
                    total += it_s
            f, g, cost, it, err = _run_log_batched(
                xp, a2, b2, M, reg, max_iter, tol, dev, f0=f0, lazy=lazy, absorb_every=every
            )
            it += total

    # --- assemble ------------------------------------------------------------
    mass_b = xp.sum(b2, axis=-1)
    reg_cost = xp.sum(a2 * f, axis=-1) + xp.sum(b2 * g, axis=-1) - reg * mass_b
    grad = f - xp.mean(f, axis=-1, keepdims=True)
    ftol = tol if tol is not None else _FIXED_TOL[dname]
    if lazy:
        converged = xp.all(err <= ftol)
    else:
        converged = bool(xp.all(err <= ftol))
        if tol is not None and not converged and warn:
            worst = float(xp.max(err))
            warnings.warn(
                f"Sinkhorn did not converge: marginal error {worst:.3g} > tol={tol:g} after "
                f"{it} iterations (reg={reg:g}, method={method!r}). Increase n_iter (cap "
                f"{max_iter}), increase reg, loosen tol, or use eps_scaling=True for a small reg.",
                ConvergenceWarning,
                stacklevel=2,
            )

    def shp(x, tail=()):
        return xp.reshape(x, batch + tail)

    return SinkhornResult(
        cost=shp(cost),
        reg_cost=shp(reg_cost),
        f=shp(f, (n,)),
        g=shp(g, (m,)),
        grad=shp(grad, (n,)),
        n_iter=int(it),
        converged=converged,
        marginal_error=shp(err),
        method=method,
        reg=reg,
        _M=M,
        _a_pos=shp(xp.astype(a2 > 0, a2.dtype), (n,)),
        _b_pos=shp(xp.astype(b2 > 0, b2.dtype), (m,)),
    )


def _sinkhorn_fused(a, b, M, reg, n_iter, method):
    """Fixed-iteration scaling of a small numpy problem in one fused kernel call.

    ``a``, ``b``, ``M`` are numpy arrays, the other arguments valid. Returns
    None when the kernel does not apply: other dtypes or shapes, broadcast
    batches, a large problem, no numba, inputs that need the full checks,
    ``"auto"`` needing the log method, or a non-finite value (the general
    path then warns and switches to log).
    """
    dt = a.dtype
    one = a.ndim == 1
    if not (
        (dt == np.float64 or dt == np.float32)
        and b.dtype == dt
        and M.dtype == dt
        and a.ndim >= 1
        and a.shape[:-1] == b.shape[:-1]
        and M.shape == (a.shape[-1], b.shape[-1])
        and 0 < M.size <= (_FUSED_MAX_NM_ONE if one or a.size == a.shape[-1] else _FUSED_MAX_NM)
        and a.size > 0
    ):
        return None
    batch = a.shape[:-1]
    n, m = a.shape[-1], b.shape[-1]
    N = math.prod(batch)
    a2 = np.ascontiguousarray(a.reshape(N, n))
    b2 = np.ascontiguousarray(b.reshape(N, m))
    M = np.ascontiguousarray(M)
    dname = dt.name
    max_ratio = _AUTO_RATIO[dname] if method == "auto" else math.inf
    out = _run_fused(a2, b2, M, reg, n_iter, max_ratio)
    if out is None or not out[0]:
        return None
    _, max_err, cost, reg_cost, err, f, g, grad, a_pos, b_pos = out
    if len(batch) != 1:
        cost, reg_cost, err = (x.reshape(batch) for x in (cost, reg_cost, err))
        f, g, grad, a_pos, b_pos = (
            x.reshape(batch + x.shape[-1:]) for x in (f, g, grad, a_pos, b_pos)
        )
    return SinkhornResult(
        cost=cost,
        reg_cost=reg_cost,
        f=f,
        g=g,
        grad=grad,
        n_iter=n_iter,
        converged=bool(max_err <= _FIXED_TOL[dname]),
        marginal_error=err,
        method="scaling",
        reg=reg,
        _M=M,
        _a_pos=a_pos,
        _b_pos=b_pos,
    )


def _lazy(*arrays) -> bool:
    """True when values cannot be read: lazy inputs, or concrete JAX arrays inside a trace.

    (:func:`otcore._array.is_lazy` answers True for any JAX array while a
    trace is active: inside ``jax.jit`` even results computed from constants
    are tracers.)
    """
    return any(is_lazy(x) for x in arrays)


def _all_finite(xp, *arrays) -> bool:
    return all(bool(xp.all(xp.isfinite(x))) for x in arrays)


def sinkhorn2(a, b, M, reg, **kwargs) -> Array:
    """The Sinkhorn distance ``<P, M>`` only (batch shape); see :func:`sinkhorn`.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore._sinkhorn import sinkhorn2
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> print(f"{float(sinkhorn2([0.5, 0.5], [0.25, 0.75], M, 0.1)):.4f}")
    0.2500
    """
    return sinkhorn(a, b, M, reg, **kwargs).cost
