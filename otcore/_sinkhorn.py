r"""Sinkhorn distances and the Frogner gradient: one engine, batched, log-stable, array-API.

Entropy-regularised optimal transport between histograms ``a`` (..., n) and
``b`` (..., m) with one shared cost ``M`` (n, m):

.. math::

    \mathrm{OT}_\varepsilon(a, b) = \min_{P \in U(a, b)}
        \langle P, M\rangle + \varepsilon \sum_{ij} P_{ij}(\log P_{ij} - 1),

solved by Sinkhorn's matrix scaling (Cuturi 2013). ``reg`` is
:math:`\varepsilon` (POT's convention; Cuturi's :math:`\lambda` is ``1 / reg``).

The engine follows OTT-JAX's separation of problem and solver:

* :func:`_problem` validates once and returns a :class:`_Problem` record
  (histograms flattened to a batch (N, n), (N, m), normalised to mass 1, the
  cost wrapped in a kernel object of :mod:`otcore._kernels`);
* one step per method: :class:`_ScalingSteps` (``u, v`` updates of Algorithm 1
  of Dhariwal & Inala, one matrix product per half-step for the whole batch)
  and :class:`_LogSteps` (the log-domain update over any kernel object);
* one driver, :func:`_drive`: fixed iterations (a ``lax.fori_loop`` inside
  ``jax.jit``) or to a tolerance, where converged pairs leave the active set;
* one :func:`_finalize`, the only place computing ``cost``, ``reg_cost``,
  the potentials, ``grad`` and ``marginal_error``;
* for small dense numpy batches in fixed-iteration mode (the training
  loop's case), :func:`_host_solve`: the same iterations and finalize
  quantities in one call into the C extension ``otcore/_csinkhorn.c``,
  where the general engine's per-call cost would dwarf the arithmetic.

Public names: :func:`sinkhorn`, :func:`sinkhorn2`, :class:`SinkhornResult`,
:data:`SINKHORN_METHODS`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from array_api_compat import is_jax_array, is_torch_array

from otcore._array import Array, is_lazy, is_numpy_namespace, namespace, to_host
from otcore._kernels import DenseKernel, Kernel
from otcore._pointcloud import PointCloud
from otcore._validate import (
    ConvergenceWarning,
    batch_shape,
    check_choice,
    check_histograms,
    check_int,
    check_scalar,
    mass_tolerance,
    reject_pot_keywords,
)

__all__ = ["SINKHORN_METHODS", "SinkhornResult", "sinkhorn", "sinkhorn2"]

#: Values accepted by ``method``.
SINKHORN_METHODS = ("auto", "scaling", "log")

# Default tolerance on the relative L1 marginal error, per dtype of the input
# (float16/bfloat16 are computed in float32 and returned in their dtype). It
# is also what ``converged`` means in fixed-iteration mode.
_DEFAULT_TOL = {"float64": 1e-9, "float32": 1e-5, "float16": 1e-3}
# Iteration cap in tolerance mode when ``n_iter`` is not given (per eps stage).
_DEFAULT_MAX_ITER = 10_000
# Tolerance mode measures the marginal error every this many iterations.
_CHECK_EVERY = 10
# "auto" takes the scaling method while (max M - min M) / reg is at most this
# (the kernel exp(-M/reg) and the scalings stay far from under/overflow) ...
_SCALING_RATIO = {"float64": 200.0, "float32": 25.0}
# ... and, in tolerance mode, eps-scaling when the ratio exceeds this.
_EPS_SCALING_RATIO = 1000.0
# eps-scaling: first stage at (max M - min M) / this, then divided by
# _EPS_FACTOR per stage; intermediate stages stop at _STAGE_TOL.
_EPS_START = 50.0
_EPS_FACTOR = 4.0
_STAGE_TOL = 1e-3
# Largest over-relaxation factor of the adaptive momentum (tolerance mode).
_OMEGA_MAX = 1.8
# ... estimated at this error measurement (from the decay since the previous one).
_OMEGA_START = 5


def _dname(xp, dtype) -> str:
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
    _a_pos: Array = field(repr=False)  # positive on the support of a (broadcasts against f)
    _b_pos: Array = field(repr=False)
    _fg: tuple | None = field(default=None, repr=False)  # float32 f, g for float16 results
    _tol: float = field(default=0.0, repr=False)  # what `converged` means, per pair

    def _converged_pairs(self) -> int:
        """How many pairs of the batch reached the tolerance (for progress reports)."""
        err = self.marginal_error
        xp = namespace(err)
        return int(xp.sum(xp.astype(err <= self._tol, xp.int64)))

    def _cloud_plan(self) -> Array:
        n, m = self._M.shape
        xp = namespace(self.f)
        lead = tuple(self.f.shape[:-1])
        P = self._M.plan(xp.reshape(self.f, (-1, n)), xp.reshape(self.g, (-1, m)), self.reg)
        P = xp.reshape(P, lead + (n, m))
        zero = xp.zeros((), dtype=P.dtype)
        return xp.where((self._a_pos > 0)[..., :, None] & (self._b_pos > 0)[..., None, :], P, zero)

    @property
    def plan(self) -> Array:
        """The transport plan ``exp((f_i + g_j - M_ij) / reg)``, batch + (n, m).

        Rows (columns) of zero-mass bins are exactly zero. Computed on every
        access and not stored: for a batch it is an ``N * n * m`` array.
        For a :class:`otcore.PointCloud` cost it is built block by block and
        refused (``ValueError`` naming the bytes) beyond the cloud's ``memory``.
        """
        if isinstance(self._M, PointCloud):
            return self._cloud_plan()
        xp = namespace(self.f, self._M)
        dt = self.f.dtype
        wide = dt if dt in (xp.float32, xp.float64) else xp.float32  # float16: exp in float32
        ninf = xp.asarray(-math.inf, dtype=wide)
        f, g = self._fg if self._fg is not None else (self.f, self.g)
        f = xp.where(self._a_pos > 0, xp.astype(f, wide), ninf)[..., :, None]
        g = xp.where(self._b_pos > 0, xp.astype(g, wide), ninf)[..., None, :]
        P = xp.exp((f + g - xp.astype(self._M, wide)) / self.reg)
        return P if wide == dt else xp.astype(P, dt)


# ---------------------------------------------------------------------------
# the problem record
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Problem:
    """A validated problem: the batch flattened, normalised, and its options.

    ``a``, ``b`` (N, n), (N, m) have mass 1 per pair (``b`` is rescaled to
    the mass of ``a``; the mass check accepts totals within
    :func:`otcore._validate.mass_tolerance`); ``scale`` (N,) is the mass of the
    original ``a``: the solution of the original problem is the plan of the
    normalised one times ``scale`` (``f`` shifted by ``reg * log(scale)``).
    Arrays live in ``xp`` (numpy for torch CPU tensors: ``out`` converts back).
    """

    xp: object
    a: Array
    b: Array
    scale: Array
    kernel: Kernel
    reg: float
    batch: tuple
    n_iter: int | None  # fixed-iteration count (tol None) or cap
    tol: float | None
    conv_tol: float  # what `converged` means
    method: str
    stages: int  # eps-scaling stages (0: none, -1: automatic)
    init: tuple | None
    lazy: bool
    warn: bool
    out: object  # callable: compute array -> array of the caller's namespace and dtype
    M: Array  # the caller's cost (for SinkhornResult.plan)
    reg_m: tuple | None = None  # unbalanced: (rho_a, rho_b), math.inf for an exact marginal

    @property
    def a_pos(self):
        return self.a > 0

    @property
    def b_pos(self):
        return self.b > 0


def _check_tol(tol, dname):
    if isinstance(tol, str):
        if tol != "auto":
            raise ValueError(f"tol must be a number >= 0, None or 'auto', got {tol!r}")
        return _DEFAULT_TOL[dname]
    return check_scalar("tol", tol, nonneg=True, allow_none=True)


def _check_stages(value):
    if value == "auto" and isinstance(value, str):
        return -2
    if value is False or value is None:
        return 0
    if value is True:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"eps_scaling must be 'auto', False, True or a number of stages (int >= 1), got {value!r}"
        )
    if value < 1:
        raise ValueError(f"eps_scaling must be >= 1 stages (or 'auto'/True/False), got {value}")
    return int(value)


def _problem(a, b, M, reg, n_iter, tol, method, eps_scaling, init, warn, reg_m=None) -> _Problem:
    """Validate once; flatten, normalise and convert; wrap the cost in a kernel."""
    reg_m = _check_reg_m(reg_m)
    cloud = M if isinstance(M, PointCloud) else None
    if cloud is not None:  # a lazy cost: its points stand in for M below
        xp, a, b = cloud.check_weights(a, b, check_mass=reg_m is None)
        M = cloud.x
    else:
        xp, a, b, M = check_histograms(a, b, M, check_mass=reg_m is None)
    reg = check_scalar("reg", reg, positive=True)
    n_iter = check_int("n_iter", n_iter, minimum=1, allow_none=True)
    method = check_choice("method", method, SINKHORN_METHODS)
    stages = _check_stages(eps_scaling)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False, got {warn!r}")
    in_dtype = a.dtype
    small = in_dtype not in (xp.float32, xp.float64)  # float16, bfloat16: run in float32
    dname = "float16" if small else _dname(xp, in_dtype)
    tol = _check_tol(tol, dname)
    if tol is None and n_iter is None:
        raise ValueError(
            "n_iter must be given when tol=None (fixed-iteration mode); "
            "pass e.g. n_iter=50, or a tol to iterate to a tolerance"
        )
    lazy = any(is_lazy(x) for x in (a, b, M))
    if lazy and tol is not None:
        raise ValueError(
            "inside jax.jit (or on lazy arrays) Sinkhorn cannot stop on a tolerance; "
            "pass tol=None and a fixed n_iter"
        )
    if stages > 0 and tol is None or stages == -1 and tol is None:
        raise ValueError("eps_scaling needs a tol (it is a run-to-tolerance scheme); pass tol='auto'")
    n, m = a.shape[-1], b.shape[-1]
    batch = batch_shape("a", a.shape[:-1], "b", b.shape[:-1])
    N = math.prod(batch)
    M_user = M if cloud is None else cloud
    if small:
        a, b, M = (xp.astype(x, xp.float32) for x in (a, b, M))
    cxp, a, b, M, out = _compute_namespace(xp, a, b, M, in_dtype)
    if method == "auto" and not lazy and is_numpy_namespace(cxp) and a.dtype == np.float32 and M.size:
        # float32 on the CPU where its scaling kernel would underflow but float64's
        # would not: the scaling iterates in float64 (same iterates as the log
        # method, several times faster), results returned in float32
        ratio = float(M.max() - M.min()) / reg
        if _SCALING_RATIO["float32"] < ratio <= _SCALING_RATIO["float64"]:
            a, b, M = (x.astype(np.float64) for x in (a, b, M))
            method = "scaling"
    a = cxp.reshape(cxp.broadcast_to(a, batch + (n,)), (N, n))
    b = cxp.reshape(cxp.broadcast_to(b, batch + (m,)), (N, m))
    scale = cxp.sum(a, axis=-1)
    if reg_m is None:
        a = a / scale[:, None]
        b = b / cxp.sum(b, axis=-1)[:, None]
    else:  # unbalanced: the masses are data, not normalised
        scale = cxp.ones_like(scale)
    if cloud is not None:
        if cxp is not xp:  # torch CPU: the cloud over numpy views of its points
            cloud = cloud._like(to_host(cloud.x), to_host(cloud.y))
        kernel = cloud.solver_kernel(lazy=lazy)
        if not isinstance(kernel, DenseKernel):
            method = "log"  # streamed costs: the log-domain step only
    else:
        kernel = DenseKernel(M, xp=cxp, lazy=lazy)
    if reg_m is not None:
        method = "log"  # the damped (unbalanced) step is a log-domain step
    if init is not None:
        init = _check_init(cxp, init, batch, n, m, scale, reg, a.dtype, xp)
    return _Problem(
        xp=cxp, a=a, b=b, scale=scale, kernel=kernel, reg=reg,
        batch=batch, n_iter=n_iter if n_iter is not None else _DEFAULT_MAX_ITER, tol=tol,
        conv_tol=tol if tol is not None else _DEFAULT_TOL[dname], method=method, stages=stages,
        init=init, lazy=lazy, warn=warn, out=out, M=M_user, reg_m=reg_m,
    )


def _check_reg_m(reg_m):
    """``None`` (balanced) or ``(rho_a, rho_b)``: positive, ``math.inf`` for an exact marginal."""
    if reg_m is None:
        return None
    pair = tuple(reg_m) if isinstance(reg_m, (tuple, list)) else (reg_m, reg_m)
    if len(pair) != 2:
        raise ValueError(f"reg_m must be a number or a pair (reg_m_a, reg_m_b), got {reg_m!r}")
    out = []
    for r in pair:
        if isinstance(r, (int, float)) and not isinstance(r, bool) and r == math.inf:
            out.append(math.inf)
        else:
            out.append(check_scalar("reg_m", r, positive=True))
    return tuple(out)


def _compute_namespace(xp, a, b, M, in_dtype):
    """Where the loop runs: numpy for numpy and torch CPU tensors (zero-copy), else ``xp``.

    Returns ``(cxp, a, b, M, out)``; ``out`` converts a computed array back to
    the caller's namespace and dtype.
    """
    if is_torch_array(a) and a.device.type == "cpu":
        import array_api_compat.numpy as npx
        import torch

        try:  # cast on the numpy side (several times cheaper than Tensor.to on small arrays)
            np_dt = torch.empty((), dtype=in_dtype).numpy().dtype
        except TypeError:  # bfloat16: no numpy dtype
            np_dt = None

        def out(x, wide=False):
            x = np.asarray(x)
            if wide or x.dtype == np_dt:
                return torch.from_numpy(x)
            if np_dt is not None:
                return torch.from_numpy(x.astype(np_dt))
            return torch.from_numpy(x).to(in_dtype)

        return npx, *(x.detach().numpy() for x in (a, b, M)), out
    if is_numpy_namespace(xp):
        a, b, M = (np.ascontiguousarray(x) for x in (a, b, M))

    def out(x, wide=False):
        return x if wide or x.dtype == in_dtype else xp.astype(x, in_dtype)

    return xp, a, b, M, out


def _check_init(xp, init, batch, n, m, scale, reg, dtype, uxp):
    """``init=(f, g)`` as normalised-frame potentials (N, n), (N, m) (``None`` entries kept)."""
    if not (isinstance(init, tuple) and len(init) == 2):
        raise TypeError("init must be a pair (f, g) of potentials (either may be None), e.g. res.f, res.g")
    N = math.prod(batch)
    f, g = init
    out = []
    for name, x, k in (("init f", f, n), ("init g", g, m)):
        if x is None:
            out.append(None)
            continue
        x = xp.asarray(np.asarray(x) if is_torch_array(x) else x, dtype=dtype)
        try:
            x = xp.reshape(xp.broadcast_to(x, batch + (k,)), (N, k))
        except (ValueError, RuntimeError):
            raise ValueError(f"{name} has shape {tuple(x.shape)}; it must broadcast to {batch + (k,)}") from None
        out.append(x)
    if out[0] is None and out[1] is None:
        return None
    if out[0] is not None:
        out[0] = out[0] - reg * xp.log(scale)[:, None]
    return tuple(out)


# ---------------------------------------------------------------------------
# steps: one per method
# ---------------------------------------------------------------------------


class _Relaxation:
    """Per-pair over-relaxation for tolerance mode (Thibault et al. 2021; Lehmann et al. 2021).

    After two error measurements ``every`` iterations apart, a pair's update
    becomes ``x <- x + omega (x_sinkhorn - x)`` (in the log domain; a power
    of the scalings in the scaling method) with Lehmann's
    ``omega = 2 / (1 + sqrt(1 - r))``, ``r`` the pair's measured error
    decay per iteration (at most ``_OMEGA_MAX``), as OTT-JAX's adaptive
    ``Momentum``. A pair whose error grows falls back to ``omega = 1``.
    Fixed-iteration mode never relaxes (it is Algorithm 1).
    """

    omega = None  # (N, 1) or None: plain Sinkhorn
    prev = None  # the pair's previous error
    checks = 0

    def observe(self, err, every):
        xp = self.xp
        self.checks += 1
        if self.omega is None and self.prev is not None and self.checks >= _OMEGA_START:
            r = xp.clip(err / self.prev, 0.0, 0.99) ** (1.0 / every)
            w = xp.minimum(2.0 / (1.0 + xp.sqrt(1.0 - r)), _OMEGA_MAX)
            self.omega = xp.where(xp.isfinite(w), w, 1.0)[:, None]
        elif self.omega is not None:
            one = xp.ones((), dtype=err.dtype)
            self.omega = xp.where((err > self.prev)[:, None], one, self.omega)
        self.prev = err

    def _relax_from(self, other, keep):
        xp = self.xp
        if other.prev is not None:
            self.prev = xp.take(other.prev, keep, axis=0)
        self.checks = other.checks
        if other.omega is not None:
            self.omega = xp.take(other.omega, keep, axis=0)
        return self


class _ScalingSteps(_Relaxation):
    """Scaling (Algorithm 1): ``v = b / (u K)``, ``u = a / (K v)``, ``K = exp(-(C - min C)/reg)``.

    A half-step ``first(u)`` gives ``(u, v, uK, Kv)``; its row marginal is
    ``u * Kv`` (the column marginal is exact). ``second`` is the u-update.
    """

    method = "scaling"
    _buf = None  # numpy: (uK, v, Kv) buffers of this batch size

    def __init__(self, prob, reg, K=None, cmin=None, a=None, b=None):
        xp = self.xp = prob.xp
        self.prob, self.reg = prob, reg
        if K is None:
            K, cmin = prob.kernel.gibbs(reg)
        self.K, self.KT, self.cmin = K, xp.matrix_transpose(K), cmin
        self.a = prob.a if a is None else a
        self.b = prob.b if b is None else b

    def take(self, keep):
        xp = self.xp
        return _ScalingSteps(self.prob, self.reg, self.K, self.cmin, xp.take(self.a, keep, axis=0),
                             xp.take(self.b, keep, axis=0))._relax_from(self, keep)

    def start(self, init):
        xp, (N, n) = self.xp, self.a.shape
        if init is None:
            return xp.full((N, n), 1.0 / n, dtype=self.a.dtype)
        f, g = init
        if f is None:
            return self.a / _mm(xp, xp.exp(g / self.reg), self.KT)
        return xp.where(self.a > 0, xp.exp((f - self.cmin) / self.reg), xp.zeros((), dtype=f.dtype))

    def first(self, u):
        xp = self.xp
        if is_numpy_namespace(xp):  # preallocated buffers, no temporaries
            if self._buf is None:
                N, n, m = u.shape[0], u.shape[1], self.b.shape[1]
                self._buf = tuple(np.empty(s, dtype=u.dtype) for s in ((N, m), (N, m), (N, n)))
            uK, v, Kv = self._buf
            if u.shape[0] == 1:  # one pair: BLAS gemv, several times faster than (1, n) @ (n, m)
                np.matmul(u[0], self.K, out=uK[0])
                np.divide(self.b, uK, out=v)
                np.matmul(self.K, v[0], out=Kv[0])
            else:
                np.matmul(u, self.K, out=uK)
                np.divide(self.b, uK, out=v)
                np.matmul(v, self.KT, out=Kv)
            return u, v, uK, Kv
        uK = _mm(xp, u, self.K)
        v = self.b / uK
        return u, v, uK, _mm(xp, v, self.KT)

    def second(self, mid):
        if self.omega is None and is_numpy_namespace(self.xp) and mid[0] is not self.a:
            return np.divide(self.a, mid[3], out=mid[0])  # u is consumed: update in place
        u = self.a / mid[3]
        if self.omega is None:
            return u
        xp = self.xp
        r = u * (mid[0] / u) ** (1.0 - self.omega)  # u_old^(1-w) u^w
        return xp.where(self.a > 0, r, xp.zeros((), dtype=u.dtype))

    def error(self, mid):
        u, _, _, Kv = mid
        return self.xp.sum(self.xp.abs(u * Kv - self.a), axis=-1)

    def potentials(self, mid):
        """``(f, g, certified)``; zero-mass bins get the c-transforms ``-reg log(K v)``, ``-reg log(u K)``."""
        xp, reg = self.xp, self.reg
        u, v, uK, Kv = mid
        f = reg * xp.log(u) + self.cmin
        g = reg * xp.log(v)
        lazy = self.prob.lazy
        if lazy or not bool(xp.all(self.a > 0)):
            f = xp.where(self.a > 0, f, self.cmin - reg * xp.log(Kv))
        if lazy or not bool(xp.all(self.b > 0)):
            g = xp.where(self.b > 0, g, -reg * xp.log(uK))
        # u K v equals exp((f + g - C)/reg) to rounding when no product can be
        # subnormal: kernel entries >= exp(-ratio), scalings within tiny**(-+1/4)
        rng = self.prob.kernel.cost_range()
        tiny = float(xp.finfo(u.dtype).smallest_normal)
        ok = rng is not None and rng / reg <= -0.5 * math.log(tiny)
        if ok and u.shape[0]:
            lo, hi = tiny**0.25, tiny**-0.25
            us = xp.where(self.a > 0, u, xp.ones((), dtype=u.dtype))
            vs = xp.where(self.b > 0, v, xp.ones((), dtype=v.dtype))
            ok = bool(xp.all((us >= lo) & (us <= hi))) and bool(xp.all((vs >= lo) & (vs <= hi)))
        return f, g, ok


class _LogSteps(_Relaxation):
    """Log-domain Sinkhorn over a kernel object (any :class:`otcore._kernels.Kernel`)::

        g = reg log b + softmin_cols(f~)      (column marginals exact)
        f = reg log a + softmin_rows(g~)

    with ``f~ = f`` on the support of ``a`` and ``-inf`` elsewhere (``reg log``
    taken as 0 on zero-mass bins: their potentials are the finite
    c-transforms). The state is ``f~``; the first iteration of a cold start
    uses ``f = -reg log n`` on every bin (Algorithm 1's ``u = 1/n``). A
    half-step ``first(f~)`` gives ``(f~, g, f_next)``; the row marginal of
    ``(f, g)`` is ``a * exp((f - f_next)/reg)``.
    """

    method = "log"

    def __init__(self, prob, reg, kernel=None, a=None, b=None):
        xp = self.xp = prob.xp
        self.prob, self.reg = prob, reg
        self.kernel = prob.kernel if kernel is None else kernel
        self.a = prob.a if a is None else a
        self.b = prob.b if b is None else b
        one = xp.ones((), dtype=self.a.dtype)
        self.loga = reg * xp.log(xp.where(self.a > 0, self.a, one))
        self.logb = reg * xp.log(xp.where(self.b > 0, self.b, one))
        self.ninf = xp.asarray(-math.inf, dtype=self.a.dtype)
        rho = prob.reg_m  # unbalanced: the soft-min damped by rho / (rho + reg) (KL-relaxed marginals)
        self.damp = (1.0, 1.0) if rho is None else tuple(1.0 if r == math.inf else r / (r + reg) for r in rho)

    def take(self, keep):
        xp = self.xp
        k = getattr(self.kernel, "take", None)
        return _LogSteps(self.prob, self.reg, k(keep) if k else self.kernel, xp.take(self.a, keep, axis=0),
                         xp.take(self.b, keep, axis=0))._relax_from(self, keep)

    def start(self, init):
        xp, (N, n) = self.xp, self.a.shape
        if init is None:
            return xp.full((N, n), -self.reg * math.log(n), dtype=self.a.dtype)
        f, g = init
        if f is None:
            f = self.loga + self._damped(0, self.kernel.softmin_rows(xp.where(self.b > 0, g, self.ninf), self.reg))
        return xp.where(self.a > 0, f, self.ninf)

    def _damped(self, side, s):
        d = self.damp[side]
        return s if d == 1.0 else d * s

    def first(self, fm):
        xp, reg, ker = self.xp, self.reg, self.kernel
        g = self.logb + self._damped(1, ker.softmin_cols(fm, reg))
        fnext = self.loga + self._damped(0, ker.softmin_rows(xp.where(self.b > 0, g, self.ninf), reg))
        return fm, g, fnext

    def second(self, mid):
        f = mid[2] if self.omega is None else mid[0] + self.omega * (mid[2] - mid[0])
        return self.xp.where(self.a > 0, f, self.ninf)

    def error(self, mid):
        xp = self.xp
        d = xp.where(self.a > 0, (mid[0] - mid[2]) / self.reg, xp.zeros((), dtype=self.a.dtype))
        err = xp.sum(self.a * xp.abs(xp.expm1(d)), axis=-1)
        # balanced: the row-marginal error (mass 1); unbalanced: the relative
        # change of the row scalings over one iteration (the fixed-point residual)
        return err if self.prob.reg_m is None else err / xp.sum(self.a, axis=-1)

    def potentials(self, mid):
        fm, g, fnext = mid
        return self.xp.where(self.a > 0, fm, fnext), g, True


def _mm(xp, X, K):
    """``X @ K`` for X (N, k); one pair as a 1-D product (BLAS gemv, much faster)."""
    if X.shape[0] == 1:
        return xp.matmul(X[0, :], K)[None, :]
    return xp.matmul(X, K)


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


def _drive(steps, state, n_iter, tol, *, every=_CHECK_EVERY, relax=True):
    """Iterate ``steps`` from ``state``: ``n_iter`` times, or until every pair reaches ``tol``.

    Returns ``(f, g, err, n_done, certified)`` over all pairs in their
    order. Fixed iterations stop early when an iteration changes the state
    only at rounding level (4 ulp; checked at iterations 1, 2, 4 and every
    8th): the state is then a fixed point to rounding, and the remaining
    iterations would only move it within rounding noise (one-hot targets get
    there within a few iterations). With a ``tol``, the marginal error is measured every ``every``
    iterations; converged pairs (and pairs whose error is no longer finite:
    under/overflow of the scaling method) leave the active set and keep the
    potentials of that half-step. Inside ``jax.jit`` the fixed-iteration
    loop is one ``lax.fori_loop`` (its trace does not grow with ``n_iter``).
    """
    xp = steps.xp
    if tol is None and is_jax_array(state) and is_lazy(state):
        from jax import lax

        state = lax.fori_loop(0, n_iter, lambda _, s: steps.second(steps.first(s)), state)
        mid = steps.first(state)
        return _gather(xp, [(np.arange(state.shape[0]), *_pick(xp, steps, mid, steps.error(mid), None))], n_iter)
    idx = np.arange(state.shape[0])
    done = []  # (indices, f, g, err, certified)
    it = 0
    for it in range(1, n_iter + 1):
        if tol is None and (it & (it - 1) == 0 or it % 8 == 0) and it < n_iter:
            # fixed iterations: a state that an iteration changes only by rounding (4 ulp) is
            # a fixed point of the iteration to rounding; the remaining ones would only move
            # it within rounding noise
            prev = xp.asarray(state, copy=True)
            state = steps.second(steps.first(state))
            if _stationary(xp, state, prev, steps.reg if steps.method == "log" else 0.0):
                n_iter = it  # n_iter reports the iterations actually done
                break
            continue
        mid = steps.first(state)
        if tol is not None and it % every == 0:
            err = steps.error(mid)
            leave = ~to_host((err > tol) & xp.isfinite(err))
            if relax:
                steps.observe(err, every)
            if leave.any():
                done.append((idx[leave], *_pick(xp, steps, mid, err, leave)))
                if leave.all():
                    return _gather(xp, done, it)
                keep = np.nonzero(~leave)[0]
                idx = idx[keep]
                kx = xp.asarray(keep)
                steps = steps.take(kx)
                mid = tuple(xp.take(x, kx, axis=0) for x in mid)
        state = steps.second(mid)
    mid = steps.first(state)
    err = steps.error(mid)
    done.append((idx, *_pick(xp, steps, mid, err, None)))
    return _gather(xp, done, n_iter)


def _stationary(xp, state, prev, scale) -> bool:
    """Whether ``state`` equals ``prev`` to 4 ulp (relative; plus ``scale``: log potentials)."""
    ulp = float(xp.finfo(state.dtype).eps)
    same = state == prev  # also -inf == -inf (masked bins)
    close = xp.abs(state - prev) <= 4.0 * ulp * (xp.abs(prev) + scale)
    return bool(xp.all(same | close))


def _pick(xp, steps, mid, err, rows):
    if rows is not None:
        kx = xp.asarray(np.nonzero(rows)[0])
        mid = tuple(xp.take(x, kx, axis=0) for x in mid)
        err = xp.take(err, kx, axis=0)
        steps = steps.take(kx)
    f, g, ok = steps.potentials(mid)
    return f, g, err, ok


def _gather(xp, done, it):
    if len(done) == 1:
        _, f, g, err, ok = done[0]
        return f, g, err, it, ok
    order = np.argsort(np.concatenate([d[0] for d in done]))
    ox = xp.asarray(order)
    cat = [xp.take(xp.concat([d[k] for d in done], axis=0), ox, axis=0) for k in (1, 2, 3)]
    return (*cat, it, all(d[4] for d in done))


# ---------------------------------------------------------------------------
# solve: method choice, eps-scaling, fallback
# ---------------------------------------------------------------------------


def _choose_method(method, cost_range, reg, dtype_name="float64") -> str:
    """``"auto"`` -> ``"scaling"`` while ``cost_range / reg <= _SCALING_RATIO``, else ``"log"``.

    ``cost_range`` None (unreadable, inside ``jax.jit``): ``"log"``.
    """
    if method != "auto":
        return method
    if cost_range is None:
        return "log"
    return "scaling" if cost_range / reg <= _SCALING_RATIO.get(dtype_name, 0.0) else "log"


def _eps_schedule(prob, method, ratio) -> list[float]:
    """Regularisations of the eps-scaling stages before ``reg`` (empty: none)."""
    st, reg = prob.stages, prob.reg
    if st == 0 or prob.tol is None or ratio is None or st == -2 and (
        method != "log" or ratio <= _EPS_SCALING_RATIO
    ):
        return []
    top = max(reg, ratio * reg / _EPS_START)
    k = st if st > 0 else max(0, math.ceil(math.log(top / reg) / math.log(_EPS_FACTOR)))
    return [reg * (top / reg) ** (1.0 - s / k) for s in range(k)] if k else []


def _solve(prob):
    """Run the chosen method; returns ``(f, g, err or None, n_iter, method)``."""
    xp = prob.xp
    rng = prob.kernel.cost_range()
    ratio = None if rng is None else rng / prob.reg
    method = _choose_method(prob.method, rng, prob.reg, _dname(xp, prob.a.dtype))
    stages = _eps_schedule(prob, method, ratio)
    if stages:
        method = "log"
    if method == "scaling":
        steps = _ScalingSteps(prob, prob.reg)
        f, g, err, it, ok = _drive(steps, steps.start(prob.init), prob.n_iter, prob.tol)
        if prob.lazy or _finite(xp, f, g):
            return f, g, (err if ok else None), it, method
        if prob.method == "scaling" and prob.warn:
            warnings.warn(
                f"method='scaling' under/overflowed at reg={prob.reg:g} ((max(M)-min(M))/reg = "
                f"{ratio:.3g}); switched to method='log'", RuntimeWarning, stacklevel=3,
            )
        method = "log"
    init, total = prob.init, 0
    for r in stages:
        steps = _LogSteps(prob, r)
        f, g, _, it, _ = _drive(steps, steps.start(init), prob.n_iter, max(prob.tol, _STAGE_TOL))
        init, total = (f, g), total + it
    steps = _LogSteps(prob, prob.reg)
    f, g, err, it, _ = _drive(steps, steps.start(init), prob.n_iter, prob.tol)
    return f, g, err, it + total, "log"


def _finite(xp, *arrays) -> bool:
    return all(bool(xp.all(xp.isfinite(x))) for x in arrays)


# ---------------------------------------------------------------------------
# finalize: the only place computing the result's quantities
# ---------------------------------------------------------------------------


def _finalize(prob, f, g, err, n_iter, method) -> SinkhornResult:
    """Potentials of the normalised problem -> :class:`SinkhornResult` of the caller's problem.

    ``err`` None: the driver could not certify that its marginal error is
    the one of ``exp((f + g - C)/reg)`` (scaling with a kernel close to
    underflow); it is then measured through the kernel (log domain).
    """
    xp, reg, ker = prob.xp, prob.reg, prob.kernel
    a_pos, b_pos = prob.a_pos, prob.b_pos
    ninf = xp.asarray(-math.inf, dtype=f.dtype)
    fm, gm = xp.where(a_pos, f, ninf), xp.where(b_pos, g, ninf)
    if err is None:
        one, zero = xp.ones((), dtype=f.dtype), xp.zeros((), dtype=f.dtype)
        d = (f - ker.softmin_rows(gm, reg)) / reg - xp.log(xp.where(a_pos, prob.a, one))
        err = xp.sum(prob.a * xp.abs(xp.expm1(xp.where(a_pos, d, zero))), axis=-1)
    scale = prob.scale
    cost = ker.transport_cost(fm, gm, reg) * scale
    f = f + reg * xp.log(scale)[:, None]
    if prob.reg_m is None:
        reg_cost = scale * (xp.sum(prob.a * f, axis=-1) + xp.sum(prob.b * g, axis=-1) - reg)
        grad = f - xp.mean(f, axis=-1, keepdims=True)
    else:
        reg_cost, grad = _unbalanced_value(prob, f, g, fm, gm)
    if prob.lazy:
        converged = xp.all(err <= prob.conv_tol)
    else:
        converged = bool(xp.all(err <= prob.conv_tol))
        if prob.tol is not None and not converged and prob.warn:
            bad = int(xp.sum(xp.astype(~(err <= prob.tol), xp.int64)))
            warnings.warn(
                f"Sinkhorn did not converge: {bad} of {err.shape[0]} pairs have a marginal error "
                f"> tol={prob.tol:g} (worst {float(xp.max(err)):.3g}) after {n_iter} iterations "
                f"(reg={reg:g}, method={method!r}). Increase n_iter (cap {prob.n_iter}), increase "
                "reg, loosen tol, or use eps_scaling=True for a small reg.",
                ConvergenceWarning, stacklevel=3,
            )
    n, m = f.shape[-1], g.shape[-1]

    def out(x, tail=(), wide=False):
        return prob.out(xp.reshape(x, prob.batch + tail), wide)

    res_f, res_g = out(f, (n,)), out(g, (m,))
    fg = None if res_f.dtype == f.dtype else (out(f, (n,), True), out(g, (m,), True))

    return SinkhornResult(
        cost=out(cost), reg_cost=out(reg_cost), f=res_f, g=res_g, grad=out(grad, (n,)),
        n_iter=int(n_iter), converged=converged, marginal_error=out(err), method=method, reg=reg,
        _M=prob.M, _a_pos=out(xp.astype(a_pos, f.dtype), (n,)), _b_pos=out(xp.astype(b_pos, f.dtype), (m,)),
        _fg=fg, _tol=prob.conv_tol,
    )


def _unbalanced_value(prob, f, g, fm, gm):
    r"""``(reg_cost, grad)`` of the unbalanced problem (KL-relaxed marginals).

    ``reg_cost`` is the minimised objective :math:`\langle P, C\rangle +
    \varepsilon \mathrm{KL}(P|a\otimes b) + \rho_a \mathrm{KL}(P1|a) +
    \rho_b \mathrm{KL}(P^\top 1|b)` with the generalised KL
    (:math:`\sum p\log(p/q) - p + q`); ``grad`` its derivative in ``a``,
    :math:`\rho_a(1 - e) + \varepsilon(\mathrm{sum}(b) - e)` with
    :math:`e = e^{-\hat f/\rho_a} = (P1)_i / a_i` at the fixed point and
    :math:`\hat f = f - \varepsilon\log a` (``hat f + reg (sum(b) - 1)``
    for an exact marginal, ``rho_a = inf``).
    """
    xp, reg, (rho_a, rho_b) = prob.xp, prob.reg, prob.reg_m
    a, b = prob.a, prob.b
    zero, one = xp.zeros((), dtype=f.dtype), xp.ones((), dtype=f.dtype)
    r, c = prob.kernel.marginals(fm, gm, reg)

    def rel(h, w):  # h - reg log w on the support of w
        return xp.where(w > 0, h - reg * xp.log(xp.where(w > 0, w, one)), h)

    def kl(p, q):  # generalised KL(p | q) per pair
        t = xp.where(p > 0, p * xp.log(xp.where(p > 0, p, one) / xp.where(q > 0, q, one)), zero)
        return xp.sum(t - p + q, axis=-1)

    fh, gh = rel(f, a), rel(g, b)
    mb = xp.sum(b, axis=-1)
    val = (xp.sum(xp.where(r > 0, r * fh, zero), axis=-1) + xp.sum(xp.where(c > 0, c * gh, zero), axis=-1)
           - reg * xp.sum(r, axis=-1) + reg * xp.sum(a, axis=-1) * mb)
    if rho_a != math.inf:
        val = val + rho_a * kl(r, a)
    if rho_b != math.inf:
        val = val + rho_b * kl(c, b)
    if rho_a == math.inf:
        grad = fh + reg * (mb[:, None] - 1.0)
    else:
        e = xp.exp(-fh / rho_a)
        grad = rho_a * (1.0 - e) + reg * (mb[:, None] - e)
    return val, grad


# ---------------------------------------------------------------------------
# the compiled driver: small dense batches in fixed-iteration mode, on the host
# ---------------------------------------------------------------------------

# the compiled driver takes batches of at most this many cost entries (N n m) in its scaling,
# kernel log and exact log forms; beyond, the general engine is faster (BLAS matrix products,
# absorbed kernels; measured on one x86 core)
_HOST_WORK = (1 << 16, 1 << 23, 1 << 15)
# ... the log form's large limit holds for pairs of at most this many entries (n m: 64 x 64
# classes); larger pairs are matrix products where BLAS wins, and keep the limit of 2**16
_HOST_LOG_PAIR = 1 << 12
# ... and runs each soft-min as one product against a shared kernel while
# (max M - min M) / reg is at most this (exact to rounding; see otcore/_csinkhorn.c),
# an exact log-sum-exp of every term beyond
_HOST_KERNEL_RATIO = 600.0

try:  # built by pip with the package; without it every problem takes the general engine
    from otcore import _csinkhorn
except ImportError:  # pragma: no cover - a source tree whose extensions were never built
    _csinkhorn = None


class _HostRun(NamedTuple):
    """What :func:`_host_solve` returns: the packed results and the batch's summary."""

    out: np.ndarray  # batch + (2n + m + 5,) in the input dtype: f, g, grad, cost, reg_cost, error, ...
    wide: np.ndarray  # the same in float64
    n: int
    m: int
    n_iter: int  # iterations done (the most over the batch)
    method: str
    converged: bool
    tol: float

    def column(self, k):
        """cost (0), reg_cost (1) or marginal error (2), of the batch shape."""
        return self.out[..., 2 * self.n + self.m + k]

    def grad(self):
        return self.out[..., self.n + self.m : 2 * self.n + self.m]

    def g(self):
        return self.out[..., self.n : self.n + self.m]


def _host_solve(a, b, M, reg, n_iter, method, eps_scaling="auto"):
    """Fixed-iteration Sinkhorn of a small dense numpy batch in one C call; None if not of that kind.

    The training-loop case (a few to a few hundred bins, batches of up to a
    few thousand pairs, a fixed ``n_iter``), where the general engine's
    per-call cost (the problem record, the driver's Python loop,
    :func:`_finalize`) dwarfs the arithmetic. ``otcore/_csinkhorn.c`` runs
    the iterations of :class:`_ScalingSteps` (``method="auto"`` while the
    scaling rule of float64 holds; a pair whose scalings approach under- or
    overflow is redone in the log form) or of :class:`_LogSteps` (the same
    cold start ``u = 1/n``, early stop at 4 ulp and masked zero-mass bins),
    then the quantities of :func:`_finalize`, in float64 whatever the input
    (float32 results are rounded once, at the end). Returns None, and the
    caller takes the general engine (which raises the library's errors), for
    anything else: other namespaces, mixed dtypes, batch shapes other than
    ``(n,)`` or ``(N, n)`` against ``(m,)`` or ``(N, m)``, more than
    ``_HOST_WORK`` cost entries, and any input the compiled scan does not
    accept (a NaN, a negative mass, totals near the mass tolerance).
    """
    if _csinkhorn is None or not (type(a) is np.ndarray and type(b) is np.ndarray and type(M) is np.ndarray):
        return None
    if eps_scaling not in ("auto", False, None) or method not in ("auto", "log") or type(n_iter) is not int:
        return None
    dt = a.dtype
    if not (dt in _HOST_TOL and b.dtype == dt and M.dtype == dt and M.ndim == 2 and 0 < a.ndim <= 2
            and 0 < b.ndim <= 2 and n_iter >= 1 and type(reg) in (int, float) and 0 < reg < math.inf):
        return None
    n, m = M.shape
    if a.shape[-1] != n or b.shape[-1] != m or (a.ndim == b.ndim == 2 and a.shape[0] != b.shape[0]):
        return None
    batch = a.shape[:-1] if a.ndim == 2 else b.shape[:-1]
    N = batch[0] if batch else 1
    if N == 0 or N * n * m > max(_HOST_WORK):
        return None
    mtol, ctol, eps, big = _HOST_TOL[dt]
    # the compiled scan sums in its own order (and float32 in float64): it accepts only
    # totals a margin inside the mass rule, where the general checks agree
    mtol -= 4.0 * (max(n, m) + 1) * eps
    limits = _HOST_WORK if n * m <= _HOST_LOG_PAIR else (_HOST_WORK[0], min(_HOST_WORK[1], 1 << 16), _HOST_WORK[2])
    W = np.empty((N, 2 * n + m + 5))
    run = _csinkhorn.fixed(
        np.ascontiguousarray(a if a.ndim == 2 else a[None], dtype=np.float64),
        np.ascontiguousarray(b if b.ndim == 2 else b[None], dtype=np.float64), np.ascontiguousarray(M, dtype=np.float64),
        float(reg), n_iter, mtol, big, _SCALING_RATIO["float64"] if method == "auto" else -1.0, _HOST_KERNEL_RATIO,
        ctol, limits, W,
    )
    if run is None:
        return None
    if not batch:
        W = W[0]
    return _HostRun(W if dt == np.float64 else W.astype(dt), W, n, m, run[0], "log" if run[1] else "scaling",
                    run[2], ctol)


def _host_result(r: _HostRun, a, b, M, reg) -> SinkhornResult:
    """The :class:`SinkhornResult` of a :func:`_host_solve` run."""
    n, m, R = r.n, r.m, r.out
    wide = R.dtype != r.wide.dtype
    return SinkhornResult(
        cost=r.column(0), reg_cost=r.column(1), f=R[..., :n], g=r.g(), grad=r.grad(), n_iter=r.n_iter,
        converged=r.converged, marginal_error=r.column(2), method=r.method, reg=float(reg), _M=M, _a_pos=a,
        _b_pos=b, _fg=(r.wide[..., :n], r.wide[..., n : n + m]) if wide else None, _tol=r.tol,
    )


# per accepted dtype: the mass tolerance (otcore._validate.mass_tolerance), the default tol,
# eps, and the largest total the scan accepts (half the dtype's range, as the general checks)
_HOST_TOL = {
    np.dtype(t): (mass_tolerance(t), _DEFAULT_TOL[t], float(np.finfo(t).eps), float(np.finfo(t).max) / 2)
    for t in ("float64", "float32")
}


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def sinkhorn(
    a,
    b,
    M,
    reg,
    *,
    n_iter: int | None = None,
    tol: float | str | None = "auto",
    method: str = "auto",
    eps_scaling: bool | int | str = "auto",
    init: tuple | None = None,
    warn: bool = True,
    reg_m=None,
    **kwargs,
) -> SinkhornResult:
    r"""Entropy-regularised OT (Sinkhorn distance) and Frogner's gradient.

    Solves, for every pair of the (broadcast) batch,

    .. math::

        P^\star = \arg\min_{P \ge 0,\ P1 = a,\ P^\top 1 = b}
            \langle P, M\rangle + \varepsilon \sum_{ij} P_{ij}(\log P_{ij} - 1)

    by Sinkhorn's scaling :math:`P = \mathrm{diag}(u) K \mathrm{diag}(v)`,
    :math:`K = e^{-M/\varepsilon}` (Cuturi 2013), or its log-domain form
    :math:`P_{ij} = e^{(f_i + g_j - M_{ij})/\varepsilon}`. ``reg`` is
    :math:`\varepsilon`, as in POT (Cuturi's :math:`\lambda` is ``1/reg``).

    Parameters
    ----------
    a : array (..., n)
        Source histograms (last axis = bins, leading axes = batch). ``None``
        or ``[]``: uniform, as in POT.
    b : array (..., m)
        Target histograms, same total mass as ``a`` (within
        :func:`otcore._validate.mass_tolerance`; ``b`` is rescaled to the mass of
        ``a``); batch shapes broadcast (e.g. one ``a`` (n,) against N ``b``
        (N, m)).
    M : array (n, m) or PointCloud
        Ground cost, shared by the batch, finite and non-negative; or a lazy
        :class:`otcore.PointCloud` (costs computed block by block, never an
        ``n x m`` matrix beyond its ``memory`` budget; the log method).
    reg : float > 0
        Entropic regularisation :math:`\varepsilon` (units of ``M``). A
        Python number (static under ``jax.jit``).
    n_iter : int >= 1, optional
        With ``tol=None``: exactly this many iterations (fixed-iteration
        mode, for training loops and ``jax.jit``): Algorithm 1 of Dhariwal &
        Inala (``u = ones/n``; ``n_iter`` times ``u = a / ((b / (u K))
        K^T)``; then ``v = b / (u K)``), in either method. With a ``tol``:
        the iteration cap (default 10000; per stage with eps-scaling).
    tol : float >= 0, None or "auto"
        Stop a pair when the relative L1 marginal error of its plan,
        ``sum|P 1 - a| / sum(a)``, is ``<= tol`` (measured every 10
        iterations; converged pairs leave the batch). ``"auto"``: ``1e-9``
        for float64, ``1e-5`` for float32, ``1e-3`` for float16/bfloat16.
        ``None``: fixed-iteration mode (needs ``n_iter``).
    method : {"auto", "scaling", "log"}
        ``"scaling"``: the u, v updates (fastest; can underflow for small
        ``reg``: then the batch is redone with ``"log"`` and a warning).
        ``"log"``: log-domain updates, never over/underflow (one matrix
        product per half-step against an absorbed kernel, Schmitzer 2019,
        with an exact log-sum-exp for rows it cannot represent).
        ``"auto"``: scaling while ``(max(M) - min(M)) / reg <= 200``
        (float64; 25 in float32), else log; log inside ``jax.jit``.
    eps_scaling : "auto", bool or int
        Solve first for larger regularisations, from ``(max(M)-min(M))/50``
        down to ``reg`` by factors of 4, warm-starting each stage (to a
        marginal error of 1e-3) from the previous one. ``"auto"``: on when
        the log method runs to a ``tol`` and ``(max(M)-min(M))/reg > 1000``;
        ``True``: always (with a ``tol``); an int: that many stages.
    init : (f, g), optional
        Warm start from potentials, e.g. ``(res.f, res.g)`` of an earlier
        call (either may be ``None``; ``f`` is used when given, else ``g``).
    warn : bool
        Emit :class:`otcore.ConvergenceWarning` when ``tol`` is not reached.
    reg_m : float, (float, float) or None
        Unbalanced transport: the marginal constraints replaced by
        ``reg_m * KL(P 1 | a) + reg_m * KL(P^T 1 | b)`` (a pair for the two
        sides, ``math.inf`` for an exact one), the entropy taken relative to
        ``a x b`` (POT's ``sinkhorn_unbalanced``, ``reg_type="kl"``); masses
        need not match. ``plan`` and ``cost`` equal POT's; ``reg_cost`` is
        the objective with the generalised KL (POT's ``"total"`` leaves out
        its mass terms) and ``grad`` its derivative in ``a``;
        ``marginal_error`` is the fixed-point residual. Log method.

    Returns
    -------
    SinkhornResult
        ``cost`` (:math:`\langle P, M\rangle`), ``reg_cost``
        (:math:`\mathrm{OT}_\varepsilon`), potentials ``f``, ``g``, ``grad``,
        ``n_iter``, ``converged``, ``marginal_error``, ``plan`` (on request).

    Notes
    -----
    **Frogner's gradient.** ``grad = f - mean(f)`` (``= reg (log u - mean
    log u)``) is the gradient of :math:`\mathrm{OT}_\varepsilon` with
    respect to ``a`` projected onto zero-sum directions (Frogner et al.
    2015; Dhariwal & Inala, Algorithm 1).

    **Zero-mass bins** get zero rows/columns in the plan (as if dropped, as
    Cuturi does) and the finite c-transform potential
    ``f_i = -reg log sum_j exp((g_j - M_ij)/reg)``; nothing is ever NaN.

    **Honest results.** ``marginal_error`` and ``converged`` are those of
    the plan ``.plan`` returns (measured in the log domain when the scaling
    iterates cannot represent it); ``cost`` is :math:`\langle P, M\rangle` of
    that plan. In fixed-iteration mode ``converged`` means the error is
    within the dtype's default ``tol``, and no warning is emitted.

    **dtypes.** float64 and float32 run in their dtype; float16 and
    bfloat16 run in float32 and the results are returned in the input dtype.
    Small numpy batches in fixed-iteration mode (at most ``2**16`` to
    ``2**23`` cost entries ``N * n * m``, by form) run in one compiled call,
    in float64 whatever the input, with the same iterations (``method``
    then reports the form that ran).

    **Inside jax.jit** (``n_iter`` given, ``tol=None``) the loop is one
    ``lax.fori_loop`` (compile time independent of ``n_iter``); the log
    method then uses an exact log-sum-exp (memory ``N * n * m``), and
    ``converged`` is a 0-d boolean array. torch CPU tensors run on their
    numpy views (no copy) and the results are torch tensors.

    References
    ----------
    M. Cuturi, Sinkhorn distances: lightspeed computation of optimal
    transport, NIPS 2013. C. Frogner et al., Learning with a Wasserstein
    loss, NIPS 2015. B. Schmitzer, Stabilized sparse scaling algorithms for
    entropy regularized transport problems, SIAM J. Sci. Comput. 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import sinkhorn
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
    if tol is None and init is None and reg_m is None and isinstance(warn, bool):
        run = _host_solve(a, b, M, reg, n_iter, method, eps_scaling)
        if run is not None:
            return _host_result(run, a, b, M, reg)
    prob = _problem(a, b, M, reg, n_iter, tol, method, eps_scaling, init, warn, reg_m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        f, g, err, it, ran = _solve(prob)
        return _finalize(prob, f, g, err, it, ran)


def sinkhorn2(a, b, M, reg, **kwargs) -> Array:
    """The Sinkhorn distance ``<P, M>`` only (batch shape); see :func:`sinkhorn`.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import sinkhorn2
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> print(f"{float(sinkhorn2([0.5, 0.5], [0.25, 0.75], M, 0.1)):.4f}")
    0.2500
    """
    return sinkhorn(a, b, M, reg, **kwargs).cost
