r"""Exact earth mover's distance: the Kantorovich LP with a checked certificate.

For histograms :math:`a \in \mathbb{R}_+^n`, :math:`b \in \mathbb{R}_+^m` of
equal total mass and a cost :math:`M \in \mathbb{R}_+^{n \times m}`,

.. math::

    W(a, b) = \min_{P \ge 0,\ P 1 = a,\ P^\top 1 = b} \langle P, M \rangle
            = \max_{f_i + g_j \le M_{ij}} \langle a, f \rangle + \langle b, g \rangle .

:func:`emd` returns the optimal plan :math:`P`, the cost and dual potentials
:math:`(f, g)`, together with a *certificate* checked on every entry of ``M``:
the marginal residuals of the plan, the largest dual violation
:math:`\max_{ij} f_i + g_j - M_{ij}` and the duality gap
:math:`|\langle P, M\rangle - \langle a, f\rangle - \langle b, g\rangle|`. A
result is ``"optimal"`` only when all three are within ``tol`` (relative to the
total mass and to :math:`\max M`).

Methods
-------
``"simplex"``
    the network simplex (Bonneel et al. 2011, the algorithm of POT's and LEMON's
    solvers) in C (:mod:`otcore._network_simplex`, built at install time): flows on a
    spanning tree, obtained from the masses by additions and subtractions only;
    north-west corner start; block search pricing; Orden's perturbation against
    cycling. All pairs of a batch in one compiled call.
``"linprog"``
    the full LP (``n*m`` variables) through :func:`scipy.optimize.linprog`
    (HiGHS) on masses divided by their total and ``M`` divided by its median
    positive entry: an independent reference. HiGHS's tolerances are absolute on those scaled
    data, so mass differences below about ``1e-10`` of the total are not
    resolved; the certificate then says ``"inaccurate"``.
``"auto"``
    ``"simplex"``; the result's ``method`` is ``"monge"`` when ``M`` is a Monge
    matrix (:math:`M_{ij} + M_{i+1,j+1} \le M_{i,j+1} + M_{i+1,j}`, checked in
    ``O(nm)``), e.g. :math:`|t_i - s_j|^p` with :math:`p \ge 1` on sorted
    supports such as :func:`otcore.ordinal_cost`: then the north-west corner
    plan, the 1-D closed form of :func:`otcore.wasserstein_1d` and
    :func:`otcore.cdf_emd`, is optimal (Hoffman 1963) and the simplex only
    certifies it (no pivot).

All methods run on the host (one transfer in with :func:`~otcore._array.to_host`,
one out with :func:`~otcore._array.from_host`): results are in the input's
namespace, dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from otcore._array import Array, from_host, to_host
from otcore._array import device as _device
from otcore._validate import (
    batch_shape,
    check_choice,
    check_histograms,
    check_scalar,
    reject_pot_keywords,
)

__all__ = ["EMDResult", "emd", "emd2"]

_METHODS = ("auto", "simplex", "linprog")
# HiGHS's smallest allowed feasibility tolerances
_HIGHS_TOL = 1e-10


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
        The method actually used: ``"simplex"``, ``"monge"`` (the simplex
        certified the north-west corner plan of a Monge ``M`` without a pivot)
        or ``"linprog"``.
    status : str or tuple of str
        ``"optimal"`` when the certificate holds; ``"inaccurate"`` when it does
        not; ``"max_iter"`` when the simplex ran out of pivots (one string per
        pair, flattened in C order, for a batch).
    max_violation : array, shape batch
        :math:`\max(0, \max_{ij} f_i + g_j - M_{ij})` over *all* of ``M``.
    gap : array, shape batch
        The duality gap :math:`|\mathrm{cost} - \langle a, f\rangle -
        \langle b, g\rangle|`.
    residual : array, shape batch
        The largest marginal residual :math:`\max(\|P 1 - a\|_\infty,
        \|P^\top 1 - b\|_\infty)` (or the most negative plan entry, if larger).
    tol : float
        The certificate's tolerance: ``"optimal"`` means ``residual <= tol *
        sum(a)``, ``max_violation <= tol * max(M)`` and ``gap <= tol * max(M)
        * sum(a)``.
    n_pivots : int
        Simplex pivots (largest over the batch; 0 for ``"linprog"``).
    plan : array, shape batch + (n, m)
        The optimal coupling, built densely on first access (the solver keeps
        it sparse: at most ``n + m - 1`` nonzeros per pair, see
        :meth:`plan_coo`).
    """

    cost: Array
    f: Array
    g: Array
    method: str
    status: Any
    max_violation: Array
    gap: Array = None
    residual: Array = None
    tol: float = 0.0
    n_pivots: int = 0
    _coo: tuple = field(default=(), repr=False, compare=False)
    _shape: tuple = field(default=(), repr=False, compare=False)
    _xp: Any = field(default=None, repr=False, compare=False)
    _device: Any = field(default=None, repr=False, compare=False)
    _dtype: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def plan(self) -> Array:
        """The optimal plan, shape batch + (n, m), built on first access."""
        rows, cols, vals = self._coo
        P = np.zeros(self._shape, dtype=np.float64)
        flat = P.reshape((-1,) + self._shape[-2:])
        k = np.repeat(np.arange(rows.shape[0]), rows.shape[1])
        np.add.at(flat, (k, rows.ravel(), cols.ravel()), vals.ravel())
        return from_host(P, self._xp, device=self._device, dtype=self._dtype)

    def plan_coo(self, index: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, values)`` of the nonzeros of the plan of batch pair ``index``
        (host numpy, float64)."""
        rows, cols, vals = (x[index] for x in self._coo)
        keep = vals > 0
        return rows[keep], cols[keep], vals[keep]


# ---------------------------------------------------------------------------------------
# solvers: (A (N, n), B (N, m), M (n, m)) host float64 -> (F, G, rows, cols, vals,
# pivots, status); potentials NaN on zero bins, tree/support arcs padded with zero flow
# ---------------------------------------------------------------------------------------


def is_monge(M) -> bool:
    r"""Whether ``M`` is a Monge matrix: :math:`M_{ij} + M_{i+1,j+1} \le M_{i,j+1} + M_{i+1,j}`.

    Up to a rounding allowance of a few ulps of :math:`\max |M|`. Then the
    north-west corner plan is optimal for every pair of histograms (Hoffman
    1963); :math:`|t_i - s_j|^p`, :math:`p \ge 1`, on sorted supports is Monge.
    """
    if min(M.shape) < 2:
        return True
    d = M[:-1, :-1] + M[1:, 1:]
    d -= M[:-1, 1:]
    d -= M[1:, :-1]
    return bool(d.max() <= 16 * np.finfo(np.float64).eps * np.abs(M).max())


def _solve_simplex(A, B, M):
    from otcore._network_simplex import solve_batch

    return solve_batch(A, B, M)


def _solve_linprog(A, B, M):
    from scipy import sparse
    from scipy.optimize import linprog

    N, n = A.shape
    m = B.shape[1]
    F = np.full((N, n), np.nan)
    G = np.full((N, m), np.nan)
    k = n + m - 1
    rows = np.zeros((N, k), dtype=np.int64)
    cols = np.zeros((N, k), dtype=np.int64)
    vals = np.zeros((N, k))
    status = np.zeros(N, dtype=np.int64)
    for p in range(N):
        ia = np.flatnonzero(A[p] > 0)
        jb = np.flatnonzero(B[p] > 0)
        C = M[np.ix_(ia, jb)]
        mass = A[p, ia].sum()
        # costs in units of a typical entry (the median), not the largest: a few huge
        # entries (forbidden pairs) then leave the relevant costs well above HiGHS's
        # absolute tolerances
        pos = C[C > 0]
        scale = float(np.median(pos)) if pos.size else 1.0
        nr, mr = C.shape
        e = np.arange(nr * mr)
        Aeq = sparse.csr_matrix(
            (np.ones(2 * e.size), (np.concatenate([e // mr, nr + e % mr]), np.concatenate([e, e]))),
            shape=(nr + mr, e.size),
        )
        res = linprog(
            (C / scale).ravel(),
            A_eq=Aeq,
            b_eq=np.concatenate([A[p, ia], B[p, jb]]) / mass,
            bounds=(0, None),
            method="highs",
            options={"primal_feasibility_tolerance": _HIGHS_TOL, "dual_feasibility_tolerance": _HIGHS_TOL},
        )
        if res.status != 0 or res.x is None:
            raise RuntimeError(
                f"exact EMD (linprog) failed: status {res.status}: {res.message}. HiGHS's "
                "tolerances are absolute on masses scaled to total 1 and M scaled to max 1; "
                "use method='simplex'"
            )
        x = res.x * mass
        nz = np.flatnonzero(res.x > 0)[:k]
        rows[p, : nz.size] = ia[nz // mr]
        cols[p, : nz.size] = jb[nz % mr]
        vals[p, : nz.size] = x[nz]
        y = res.eqlin.marginals * scale
        F[p, ia] = y[:nr]
        G[p, jb] = y[nr:]
    return F, G, rows, cols, vals, np.zeros(N, dtype=np.int64), status


# ---------------------------------------------------------------------------------------
# finalize: potentials on zero bins, normalisation, cost and certificate (compiled)
# ---------------------------------------------------------------------------------------


def _finalize(A, B, M, F, G, rows, cols, vals, status, tol):
    """Complete the potentials, normalise them and check the certificate (host)."""
    from otcore._network_simplex import certify

    A = np.ascontiguousarray(A)
    B = np.ascontiguousarray(B)
    cost, viol, gap, resid = certify(A, B, M, F, G, rows, cols, vals)
    mass = A.sum(axis=1)
    scale = max(float(np.abs(M).max()), np.finfo(np.float64).tiny)
    ok = (resid <= tol * mass) & (viol <= tol * scale) & (gap <= tol * scale * mass)
    names = np.where(status == 1, "max_iter", np.where(ok & (status == 0), "optimal", "inaccurate"))
    return cost, F, G, viol, gap, resid, tuple(str(s) for s in names)


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------


def emd(a, b, M, *, method: str = "auto", tol: float = 1e-11, **kwargs) -> EMDResult:
    r"""Exact earth mover's distance with the optimal plan and a checked certificate.

    Solves the Kantorovich linear program

    .. math::

        \min_{P \ge 0} \langle P, M\rangle \quad \text{s.t.}\quad P 1_m = a,\
        P^\top 1_n = b

    and its dual :math:`\max \langle a, f\rangle + \langle b, g\rangle` s.t.
    :math:`f_i + g_j \le M_{ij}`, exactly (a simplex basis, not a
    regularised approximation), with the network simplex of Bonneel et al.
    (2011). The flows live on a spanning tree and are computed from the masses
    by additions and subtractions only: marginals are exact up to rounding, for
    masses down to the smallest float64 and any range of ``M``.

    Parameters
    ----------
    a : array, shape (..., n)
        Source histograms (last axis = bins, leading axes = batch), >= 0.
        ``None`` or ``[]`` means uniform weights (as in POT).
    b : array, shape (..., m)
        Target histograms with the same total mass as ``a`` (relative
        tolerance 1e-6 for float64, 1e-4 for float32). Before solving, ``b``
        is rescaled to the total of ``a`` so that the LP is exactly feasible.
    M : array, shape (n, m)
        Ground cost, finite and >= 0, shared by all pairs.
    method : {"auto", "simplex", "linprog"}
        ``"simplex"``: the compiled network simplex, every pair of the batch
        in one call; ``"linprog"``: the full LP in
        :func:`scipy.optimize.linprog` (HiGHS), the independent reference,
        ``O(nm)`` variables, one pair at a time; ``"auto"``: the simplex,
        reported as ``"monge"`` when ``M`` is a Monge matrix (1-D costs
        :math:`|t_i - s_j|^p`, :math:`p \ge 1`, on sorted supports), whose
        north-west corner plan (the 1-D closed form) the simplex certifies
        without a pivot.
    tol : float
        Tolerance of the certificate: the status is ``"optimal"`` only if the
        marginal residuals are at most ``tol * sum(a)``, the dual violation
        at most ``tol * max(M)`` and the duality gap at most
        ``tol * max(M) * sum(a)``. The simplex meets the default ``1e-11``
        with a wide margin (its errors are rounding of sums of ``n + m``
        terms); HiGHS (``"linprog"``) may not.

    Returns
    -------
    EMDResult
        ``cost`` (batch shape), ``plan`` (batch + (n, m), built on access),
        ``f`` (batch + (n,)), ``g`` (batch + (m,)), ``method``, ``status``,
        ``max_violation``, ``gap``, ``residual`` (batch shape), ``tol``,
        ``n_pivots``; arrays in the namespace, dtype and device of the inputs.
        An empty batch gives arrays with a zero-length batch axis.

    Raises
    ------
    ValueError
        negative, NaN or infinite masses or costs; unequal total masses (the
        message shows both sums); shapes of ``a``, ``b``, ``M`` that do not
        match; empty or all-zero histograms; ``M`` not 2-D; unknown method.
    TypeError
        non-numeric or complex input, arrays from different libraries, POT
        keywords (the message names otcore's argument).

    Notes
    -----
    Zero-mass bins are dropped before solving and restored afterwards with
    zero plan rows/columns and potentials :math:`g_j = \min_i M_{ij} - f_i`
    (dropped columns, over the kept rows), then :math:`f_i = \min_j M_{ij} -
    g_j` (dropped rows), so that :math:`f_i + g_j \le M_{ij}` holds
    everywhere. The simplex enters an arc only when its reduced cost is below
    minus a few ulps of the numbers that make it, so it terminates in floating
    point; the certificate then checks the result on all of ``M``.

    References
    ----------
    Bonneel, N., van de Panne, M., Paris, S. & Heidrich, W. (2011). Displacement
    interpolation using Lagrangian mass transport.
    Orden, A. (1956). The transhipment problem (the perturbation against cycling).
    Hoffman, A. J. (1963). On simple linear programming problems (Monge matrices).

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import emd
    >>> a = np.array([0.5, 0.5]); b = np.array([0.25, 0.75])
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = emd(a, b, M)
    >>> print(f"{float(res.cost):.4f}", res.status, res.method)
    0.2500 optimal monge
    >>> res.plan
    array([[0.25, 0.25],
           [0.  , 0.5 ]])
    >>> print(float(res.max_violation) <= 1e-12)
    True
    """
    method = check_choice("method", method, _METHODS)
    tol = check_scalar("tol", tol, nonneg=True)
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
    A = np.ascontiguousarray(np.broadcast_to(A, bshape + (n,)).reshape(-1, n))
    B = np.broadcast_to(B, bshape + (m,)).reshape(-1, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        B = B * (A.sum(axis=1) / B.sum(axis=1))[:, None]
    solve = _solve_linprog if method == "linprog" else _solve_simplex
    F, G, rows, cols, vals, pivots, st = solve(A, B, Mh)
    cost, F, G, viol, gap, resid, status = _finalize(A, B, Mh, F, G, rows, cols, vals, st, tol)
    used = method
    if method != "linprog":
        used = "monge" if pivots.size and not pivots.any() and is_monge(Mh) else "simplex"

    # the one transfer back
    def out(x, shape):
        return from_host(np.reshape(x, shape), xp, device=dev, dtype=dtype)

    return EMDResult(
        cost=out(cost, bshape),
        f=out(F, bshape + (n,)),
        g=out(G, bshape + (m,)),
        method=used,
        status=status if bshape else status[0],
        max_violation=out(viol, bshape),
        gap=out(gap, bshape),
        residual=out(resid, bshape),
        tol=tol,
        n_pivots=int(pivots.max()) if pivots.size else 0,
        _coo=(rows, cols, vals),
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
    >>> from otcore import emd2
    >>> x = np.arange(4.0)
    >>> M = np.abs(x[:, None] - x[None, :])
    >>> print(f"{float(emd2(np.array([1., 0, 0, 0]), np.array([0., 0, 0, 1]), M)):.4f}")
    3.0000
    """
    return emd(a, b, M, **kwargs).cost
