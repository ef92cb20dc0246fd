"""Ground costs: pairwise distances between points, label costs, normalisation.

The cost matrix :math:`M` is the *ground metric* of optimal transport: the
price of moving one unit of mass from bin :math:`i` to bin :math:`j`. This
module builds the usual ones:

- :func:`cost_matrix` -- distances between two point clouds (every metric
  of ``scipy.spatial.distance.cdist``, with its ``w``, ``V``, ``VI``), on any
  array-API namespace;
- :func:`ordinal_cost` -- :math:`|i - j|^p` between ``k`` ordered classes
  (the digit experiment of Dhariwal & Inala, section 4.2);
- :func:`grid_cost` -- distances between the cells of a ``d x d`` label grid
  (the noisy-label experiment of Dhariwal & Inala, section 4.3);
- :func:`normalize_cost` -- rescale a cost to ``[0, scale]`` (Dhariwal & Inala
  normalises to ``[0, 10)`` for faster Sinkhorn convergence).

All functions return arrays of the input namespace, on the input device, in
float64 unless the inputs are float32 (integers and booleans are promoted to
float64).
"""

from __future__ import annotations

import math

import numpy as np
import array_api_compat.numpy as _npx
from array_api_compat import is_cupy_namespace, is_jax_namespace, is_numpy_namespace, is_torch_namespace

from otcore._array import (
    Array,
    as_float,
    clip_inplace,
    device,
    float_dtype,
    is_lazy,
    namespace,
    to_host,
)
from otcore._validate import (
    check_choice,
    check_cost,
    check_float_dtype,
    check_int,
    check_power,
    check_scalar,
    check_values,
)

__all__ = ["METRICS", "cost_matrix", "ordinal_cost", "grid_cost", "normalize_cost"]

#: The metrics :func:`cost_matrix` understands: every metric of ``scipy.spatial.distance.cdist``.
METRICS = (
    "braycurtis",
    "canberra",
    "chebyshev",
    "cityblock",
    "correlation",
    "cosine",
    "dice",
    "euclidean",
    "hamming",
    "jaccard",
    "jensenshannon",
    "mahalanobis",
    "minkowski",
    "rogerstanimoto",
    "russellrao",
    "seuclidean",
    "sokalsneath",
    "sqeuclidean",
    "yule",
)

# metrics of boolean vectors (their counts n_tt, n_tf, n_ft, n_ff): input must be 0/1
_BOOLEAN = ("dice", "rogerstanimoto", "russellrao", "sokalsneath", "yule")
# metrics that cdist computes without weights
_NO_WEIGHTS = ("jensenshannon", "mahalanobis", "seuclidean")
# metrics whose numpy path is scipy's own C loop (same values, no temporaries)
_CDIST_C = ("braycurtis", "canberra", "chebyshev", "cityblock", "hamming")

# Elements of one (rows x m) tile in the direct (non-GEMM) metrics: the tile and
# its temporaries stay in cache (256 KiB in float64), so memory beyond the output
# is O(tile + m * d) however large n, m and d are.
_TILE = 1 << 15

# GEMM entries M_ij <= _TAU * (|x_i - c|^2 + |y_j - c|^2) (cosine: M_ij <= _TAU) are
# recomputed directly: there the rounding of the expansion, about
# (d + 2) eps (|x_i - c|^2 + |y_j - c|^2), is not small against M_ij.
_TAU = 2.0**-8


def _default_xp(xp):
    if xp is None:
        import array_api_compat.numpy as np_xp

        return np_xp
    return xp


def _as_points(v, name: str, xp, dtype) -> Array:
    """``v`` as a finite 2-D (points, features) array; 1-D means (n, 1)."""
    v = as_float(v, xp, dtype, name=name)
    if v.ndim == 1:
        v = xp.reshape(v, (v.shape[0], 1))
    if v.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of points of shape (n_points, n_features) "
            f"(or 1-D for scalar points), got shape {tuple(v.shape)}"
        )
    if v.shape[0] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(v.shape)}); pass at least one point")
    if v.shape[1] == 0:
        raise ValueError(f"{name} has points with no features (shape {tuple(v.shape)})")
    check_values(v, name, xp, nonneg=False, what="coordinates")
    return v


def _as_param(v, name: str, shape: tuple, xp, dtype, what: str) -> Array:
    """A finite parameter array (``w``, ``V``, ``VI``) of exactly ``shape``."""
    v = as_float(v, xp, dtype, name=name)
    if tuple(v.shape) != shape:
        raise ValueError(
            f"{name} has shape {tuple(v.shape)} but must have shape {shape}: {what}"
        )
    check_values(v, name, xp, nonneg=False, what="entries")
    return v


def cost_matrix(x, y=None, *, metric: str = "sqeuclidean", p: float = 2, w=None, V=None, VI=None) -> Array:
    r"""Pairwise distances between the points of ``x`` and ``y``.

    .. math::

        M_{ij} = d(x_i, y_j),

    for every metric ``d`` of :func:`scipy.spatial.distance.cdist` (the names
    in :data:`METRICS`), with the same arguments (``p``, ``w``, ``V``,
    ``VI``) and the same values (to about 1e-12 relative in float64), e.g.

    .. math::

        \text{sqeuclidean: } \textstyle\sum_k w_k (u_k - v_k)^2, \quad
        \text{minkowski: } \bigl(\sum_k w_k |u_k - v_k|^p\bigr)^{1/p}, \quad
        \text{cosine: } 1 - \frac{u\cdot v}{\|u\|\,\|v\|}.

    Parameters
    ----------
    x : array, shape (n, d) or (n,)
        Source points, one per row. A 1-D array is ``n`` scalar points,
        i.e. shape ``(n, 1)`` (not one point in ``n`` dimensions).
    y : array, shape (m, d) or (m,), optional
        Target points (same number of features as ``x``). ``None`` means
        ``x`` itself (as ``cdist(x, x)``); the result is then exactly
        symmetric with an exactly zero diagonal (except ``"russellrao"``).
    metric : str
        One of :data:`METRICS`.
    p : float
        Order of the ``"minkowski"`` metric, ``p >= 1`` (``math.inf`` gives
        ``"chebyshev"``). Ignored by the other metrics.
    w : array, shape (d,), optional
        Non-negative feature weights, as ``cdist``'s ``w`` (every metric but
        ``"jensenshannon"``, ``"mahalanobis"`` and ``"seuclidean"``).
    V : array, shape (d,), optional
        Positive feature variances of ``"seuclidean"``; default: the variance
        (``ddof=1``) of ``x`` and ``y`` stacked, as ``cdist``.
    VI : array, shape (d, d), optional
        Inverse covariance of ``"mahalanobis"`` (symmetric positive
        semi-definite); default: the inverse covariance of ``x`` and ``y``
        stacked, as ``cdist``.

    Returns
    -------
    M : array, shape (n, m)
        Non-negative distances in the namespace and on the device of ``x``;
        float64 unless the inputs are float32 (or half precision, see Notes).

    Raises
    ------
    ValueError
        Unknown metric (the message lists :data:`METRICS`), ``w``/``V``/``VI``
        of the wrong shape, negative or all-zero ``w``, non-positive ``V``,
        ``VI`` not positive semi-definite, zero vectors under
        ``"cosine"``/``"correlation"``, histograms with a negative entry or
        no mass under ``"jensenshannon"``, entries other than 0 and 1 under
        the boolean metrics, and the usual point-set errors.
    TypeError
        ``w``, ``V`` or ``VI`` for a metric that does not use them.

    Notes
    -----
    *Coincident points* are exactly 0 apart in every metric (``cdist`` itself
    gives NaN for two zero vectors under ``"braycurtis"``, ``"dice"`` and
    ``"sokalsneath"``); ``"russellrao"`` is not a metric
    (:math:`d(u, u) = n_{ff}/n`) and keeps ``cdist``'s values.

    *sqeuclidean, euclidean, seuclidean, mahalanobis* (and ``minkowski`` with
    ``p = 2``) use the GEMM expansion
    :math:`\|x_i-y_j\|^2 = \|x_i\|^2 + \|y_j\|^2 - 2\,x_i\cdot y_j` on the
    points mapped by :math:`\sqrt{w}`, :math:`1/\sqrt{V}` or
    :math:`L` with :math:`L L^\top = VI`, first *centred* at the mean of
    all points (distances are translation invariant). Its rounding is about
    :math:`(d+2)\,\epsilon\,(\|x_i-c\|^2 + \|y_j-c\|^2)`; the entries where
    that is not small against the distance, :math:`M_{ij} \le 2^{-8}
    (\|x_i-c\|^2 + \|y_j-c\|^2)`, are recomputed directly as
    :math:`\sum_k w_k (x_{ik} - y_{jk})^2` (resp. :math:`\delta^\top VI
    \delta`), so coincident points give exactly 0 and close pairs keep their
    relative accuracy. On random data almost no entry is recomputed; the
    worst case is tight clusters far from the common centre. *cosine* and
    *correlation* take :math:`1 - x_n y_n^\top` of the unit (centred) rows and
    recompute :math:`\tfrac12\|x_n - y_n\|^2` where it is below
    :math:`2^{-8}`. Inside ``jax.jit`` (values unknown) nothing is
    recomputed.

    *Direct metrics* (cityblock, chebyshev, minkowski, braycurtis, canberra,
    hamming, jensenshannon) are computed in row tiles of about 32k entries
    looping over features, so no ``n * m * d`` intermediate is built. On
    numpy input, braycurtis, canberra, chebyshev, cityblock and hamming call
    ``scipy.spatial.distance.cdist`` itself (float32 results computed in
    float64 and rounded). Minkowski is evaluated as
    :math:`s\,(\sum_k w_k (|u_k-v_k|/s)^p)^{1/p}`, :math:`s = \|u-v\|_\infty`,
    when a bound on the coordinates shows the plain sum could overflow or
    underflow. The boolean metrics (and jaccard on ``x != 0``) count
    :math:`n_{tt}, n_{tf}, n_{ft}, n_{ff}` by matrix products.

    *Half precision*: float16 / bfloat16 inputs are computed in float32 and
    returned in the input dtype; a distance beyond that dtype's range raises
    ``ValueError`` instead of becoming ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> cost_matrix(x, metric="euclidean")
    array([[0., 5.],
           [5., 0.]])
    >>> cost_matrix(x, np.array([[0.0, 1.0]]), metric="cityblock", w=np.array([1.0, 2.0]))
    array([[2.],
           [9.]])
    """
    metric = check_choice("metric", metric, METRICS)
    if metric == "minkowski":
        p = check_power("p", p, allow_inf=True, reason="the Minkowski distance is a metric only for p >= 1")
        if p == 1.0:
            metric = "cityblock"
        elif p == 2.0:
            metric = "euclidean"
        elif math.isinf(p):
            metric = "chebyshev"
    for name, val, owner in (("V", V, "seuclidean"), ("VI", VI, "mahalanobis")):
        if val is not None and metric != owner:
            raise TypeError(f"{name} is used only by metric={owner!r}; drop it for metric={metric!r}")
    if w is not None and metric in _NO_WEIGHTS:
        raise TypeError(f"metric={metric!r} takes no weights w (as in scipy's cdist); drop w")
    xp = namespace(x, y, w, V, VI)
    x = as_float(x, xp, name="x")
    y_ = None if y is None else as_float(y, xp, name="y")
    out_dtype = float_dtype(xp, x, y_)
    # half precision is computed in float32 and returned in the input dtype
    dtype = out_dtype if out_dtype in (xp.float32, xp.float64) else xp.float32
    x = _as_points(x, "x", xp, dtype)
    same = y_ is None
    y_ = x if same else _as_points(y_, "y", xp, dtype)
    d = x.shape[1]
    if d != y_.shape[1]:
        raise ValueError(
            f"x and y must have the same number of features (columns): x has shape "
            f"{tuple(x.shape)}, y has shape {tuple(y_.shape)}"
        )
    if w is not None:
        w = _as_param(w, "w", (d,), xp, dtype, "one non-negative weight per feature (column) of x")
        check_values(w, "w", xp, nonneg=True, what="weights")
        if not is_lazy(w) and not float(to_host(xp.max(w))) > 0:
            raise ValueError("w is all zero; at least one feature needs a positive weight")
    M = _dispatch(x, y_, xp, same, metric, p, w, V, VI)
    if out_dtype != dtype:
        M = _to_half(M, xp, out_dtype)
    return M


def _to_half(M, xp, dtype):
    """``M`` (float32) in the half-precision ``dtype``; values beyond its range raise."""
    if not is_lazy(M):
        hi = float(to_host(xp.max(M)))
        top = float(xp.finfo(dtype).max)
        if hi > top:
            raise ValueError(
                f"the largest distance, {hi:g}, exceeds the range of {dtype} (max {top:g}); "
                "pass float32 points (or rescale them)"
            )
    return xp.astype(M, dtype)


def _dispatch(x, y, xp, same, metric, p, w, V, VI):
    if metric in ("sqeuclidean", "euclidean"):
        s = None if w is None else xp.sqrt(w)
        return _gemm_metric(x, y, xp, same, metric == "euclidean", scale=s, w=w)
    if metric == "seuclidean":
        V = _variances(x, y, V, xp)
        return _gemm_metric(x, y, xp, same, True, scale=1.0 / xp.sqrt(V), w=1.0 / V)
    if metric == "mahalanobis":
        G, L = _mahalanobis_factor(x, y, VI, xp)
        return _gemm_metric(x, y, xp, same, True, L=L, G=G)
    if metric in ("cosine", "correlation"):
        return _cosine(x, y, xp, same, w, metric == "correlation")
    if metric in _BOOLEAN or metric == "jaccard":
        M = _boolean(x, y, xp, same, metric, w)
        if same and w is not None:  # weighted counts: the two products round differently
            M = M + M.T
            M *= 0.5
        return M
    if metric == "jensenshannon":
        x = _probabilities(x, "x", xp)
        y = x if same else _probabilities(y, "y", xp)
    if metric in _CDIST_C and is_numpy_namespace(xp):
        # numpy input: scipy's C loop is the same computation without temporaries
        from scipy.spatial.distance import cdist

        kw = {} if w is None else {"w": np.asarray(w, dtype=np.float64)}
        M = cdist(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), metric, **kw)
        if metric == "braycurtis":
            M[np.isnan(M)] = 0.0  # 0/0: two zero vectors, which coincide
        return xp.astype(xp.asarray(M), x.dtype, copy=False)
    if metric == "chebyshev" and w is not None:
        keep = to_host(w) > 0  # cdist: the maximum over the features of positive weight
        if not is_lazy(w) and not keep.all():
            idx = xp.asarray(np.nonzero(keep)[0], device=device(x))
            x, y, w = xp.take(x, idx, axis=1), xp.take(y, idx, axis=1), None
    return _direct(x, y, xp, metric, p, w)


# --------------------------------------------------------------------------- GEMM metrics


def _variances(x, y, V, xp):
    d = x.shape[1]
    if V is None:
        z = xp.concat([x, y], axis=0)
        V = xp.var(z, axis=0, correction=1)
        if not is_lazy(V):
            bad = to_host(V) <= 0
            if bad.any():
                k = int(np.argmax(bad))
                raise ValueError(
                    f"seuclidean: feature {k} is constant over x and y (variance 0), so the "
                    "default V is not usable; pass V (positive variances, shape (d,))"
                )
        return V
    V = _as_param(V, "V", (d,), xp, x.dtype, "one positive variance per feature (column) of x")
    if not is_lazy(V) and not float(to_host(xp.min(V))) > 0:
        raise ValueError("V has entries <= 0; V holds variances and must be > 0")
    return V


def _mahalanobis_factor(x, y, VI, xp):
    """``(G, L)``: the symmetric ``VI`` and ``L`` with ``L L^T = G`` (eigendecomposition)."""
    d = x.shape[1]
    if VI is None:
        z = xp.concat([x, y], axis=0)
        N = z.shape[0]
        if N <= d:
            raise ValueError(
                f"mahalanobis: {N} points in {d} dimensions are too few to estimate the "
                f"covariance (need more than {d}); pass VI, the inverse covariance, shape ({d}, {d})"
            )
        zc = z - xp.mean(z, axis=0)
        C = xp.matmul(zc.T, zc) / (N - 1)
        lam, Q = xp.linalg.eigh((C + C.T) * 0.5)
        if not is_lazy(lam):
            lo, hi = (float(v) for v in to_host(xp.stack([xp.min(lam), xp.max(lam)])))
            if not lo > math.sqrt(float(xp.finfo(x.dtype).eps)) * hi:
                raise ValueError(
                    "mahalanobis: the covariance of x and y (stacked) is singular or nearly so "
                    f"(eigenvalues {lo:.3g} to {hi:.3g}: a feature is constant or the features are "
                    "linearly dependent), so the default VI = inverse covariance is unusable; pass VI"
                )
        # VI = C^-1 = Q diag(1/lam) Q^T, L = Q diag(lam^-1/2)
        return xp.matmul(Q / lam[None, :], Q.T), Q / xp.sqrt(lam)[None, :]
    VI = _as_param(VI, "VI", (d, d), xp, x.dtype, "the inverse covariance of the features")
    G = (VI + VI.T) * 0.5
    lam, Q = xp.linalg.eigh(G)
    if not is_lazy(lam):
        lo, hi = (float(v) for v in to_host(xp.stack([xp.min(lam), xp.max(xp.abs(lam))])))
        if lo < -math.sqrt(float(xp.finfo(x.dtype).eps)) * hi:
            raise ValueError(
                f"VI is not positive semi-definite (eigenvalue {lo:g}); the Mahalanobis "
                "distance needs an inverse covariance matrix"
            )
    lam = xp.where(lam > 0, lam, xp.zeros_like(lam))
    return G, Q * xp.sqrt(lam)[None, :]


def _gemm_metric(x, y, xp, same, root, *, scale=None, w=None, L=None, G=None):
    """sqeuclidean (``root``: euclidean) of the mapped points, close pairs recomputed."""
    if L is not None:
        xt = xp.matmul(x, L)
        yt = xt if same else xp.matmul(y, L)
    elif scale is not None:
        xt = x * scale
        yt = xt if same else y * scale
    else:
        xt, yt = x, y

    def exact(ii, jj):
        """``sum_k w_k (x_ik - y_jk)^2`` (``G``: ``delta^T G delta``) of the pairs ``(ii, jj)``."""
        dlt = xp.take(x, ii, axis=0) - xp.take(y, jj, axis=0)
        if G is not None:
            q = xp.sum(xp.matmul(dlt, G) * dlt, axis=1)
            return xp.where(q > 0, q, xp.zeros_like(q))
        sq = dlt * dlt
        return xp.sum(sq if w is None else sq * w, axis=1)

    if is_numpy_namespace(xp):

        def dense(i0, i1):
            """The same for the whole row block ``i0:i1``: scipy's C loop."""
            from scipy.spatial.distance import cdist

            xb = np.asarray(x[i0:i1], dtype=np.float64)
            yb = np.asarray(y, dtype=np.float64)
            if G is not None:
                D = cdist(xb, yb, "mahalanobis", VI=np.asarray(G, dtype=np.float64))
                return D * D
            return cdist(xb, yb, "sqeuclidean", **({} if w is None else {"w": np.asarray(w, dtype=np.float64)}))

        return _sqeuclidean_numpy(xt, yt, same, root, exact, dense)
    return _sqeuclidean(xt, yt, xp, same, root, exact)


def _centred(x, y, xp, same):
    n = x.shape[0]
    if same:
        xc = x - xp.mean(x, axis=0)
        nx = xp.sum(xc * xc, axis=1)
        return xc, xc, nx, nx
    c = (xp.sum(x, axis=0) + xp.sum(y, axis=0)) / (n + y.shape[0])
    xc, yc = x - c, y - c
    return xc, yc, xp.sum(xc * xc, axis=1), xp.sum(yc * yc, axis=1)


def _sqeuclidean_numpy(x, y, same, root, exact, dense):
    """numpy: one GEMM that also adds the norms, then the check, fix and square root per row block."""
    xc, yc, nx, ny = _centred(x, y, _npx, same)
    n, m, d = xc.shape[0], yc.shape[0], xc.shape[1]
    # [-2 x, |x|^2, 1] . [y, 1, |y|^2] = |x|^2 + |y|^2 - 2 x.y: the norms ride in the
    # product (two extra columns) instead of two passes over the n x m output
    A = np.empty((n, d + 2), dtype=xc.dtype)
    np.multiply(xc, -2.0, out=A[:, :d])  # exact scaling
    A[:, d], A[:, d + 1] = nx, 1.0
    B = np.empty((m, d + 2), dtype=xc.dtype)
    B[:, :d], B[:, d], B[:, d + 1] = yc, 1.0, ny
    M = A @ B.T
    # candidates: M_ij <= tau (|x_i|^2 + max_j |y_j|^2), a superset of the entries to
    # recompute, found by one comparison per row block; the exact rule filters them
    row_thr = (nx + float(ny.max())) * _TAU
    rows = max(1, (4 * _TILE) // m)
    flag = np.empty((min(rows, n), m), dtype=bool)
    sqrt_here = root and not same
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        blk, f = M[i0:i1], flag[: i1 - i0]
        np.less_equal(blk, row_thr[i0:i1, None], out=f)  # every negative entry is a candidate
        cnt = np.count_nonzero(f)
        if 8 * cnt > f.size:  # many close pairs (tight clusters): the whole block by cdist
            np.less_equal(blk, _TAU * (nx[i0:i1, None] + ny), out=f)
            np.copyto(blk, dense(i0, i1), where=f)
        elif cnt:
            ii, jj = np.nonzero(f)
            keep = blk[ii, jj] <= _TAU * (nx[ii + i0] + ny[jj])
            ii, jj = ii[keep], jj[keep]
            blk[ii, jj] = exact(ii + i0, jj)
        if sqrt_here:
            np.sqrt(blk, out=blk)
    if same:
        M = _symmetrise_zero_diag(M, _npx)
        if root:
            np.sqrt(M, out=M)
    return M


def _sqeuclidean(x, y, xp, same, root, exact):
    xc, yc, nx, ny = _centred(x, y, xp, same)
    M = xp.matmul(xc * -2.0, yc.T)
    M += nx[:, None]
    M += ny[None, :]
    if not (is_lazy(M) or is_lazy(x)):
        flag = M <= _TAU * (nx[:, None] + ny[None, :])
        M = _recompute(M, flag, exact, xp)
    M = xp.where(M > 0, M, xp.zeros_like(M)) if is_jax_namespace(xp) else clip_inplace(M, xp, 0.0)
    if same:
        M = _symmetrise_zero_diag(M, xp)
    return _sqrt(M, xp) if root else M


def _sqrt(M, xp):
    """Square root with a finite (zero) gradient at exact zeros under autograd."""
    if is_jax_namespace(xp) or (is_torch_namespace(xp) and M.requires_grad):
        pos = M > 0
        return xp.where(pos, xp.sqrt(xp.where(pos, M, xp.ones_like(M))), xp.zeros_like(M))
    if is_torch_namespace(xp):
        M **= 0.5  # in place: no second n x m array
        return M
    return xp.sqrt(M)


def _recompute(M, flag, exact, xp):
    """``M`` with the flagged entries replaced by ``exact(rows, cols)``."""
    if is_jax_namespace(xp):
        ii, jj = xp.nonzero(flag)
        return M.at[ii, jj].set(exact(ii, jj)) if ii.shape[0] else M
    if is_torch_namespace(xp) or is_cupy_namespace(xp):
        ii, jj = xp.nonzero(flag)
        if ii.shape[0]:
            M[ii, jj] = exact(ii, jj)
        return M
    # the standard has no scatter: recompute whole row blocks that hold a flagged entry
    n, m = M.shape
    rows = max(1, _TILE // m)
    has = to_host(xp.any(flag, axis=1))
    dev = device(M)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        if not has[i0:i1].any():
            continue
        ii = xp.reshape(xp.broadcast_to(xp.arange(i0, i1, device=dev)[:, None], (i1 - i0, m)), (-1,))
        jj = xp.reshape(xp.broadcast_to(xp.arange(m, device=dev)[None, :], (i1 - i0, m)), (-1,))
        val = xp.reshape(exact(ii, jj), (i1 - i0, m))
        M[i0:i1, :] = xp.where(flag[i0:i1, :], val, M[i0:i1, :])
    return M


def _symmetrise_zero_diag(M, xp):
    """``(M + M^T)/2`` with an exactly zero diagonal (square ``M``)."""
    n = M.shape[0]
    M = M + M.T
    M *= 0.5
    if is_jax_namespace(xp):
        eye = xp.eye(n, dtype=xp.bool, device=device(M))
        return xp.where(eye, xp.zeros((), dtype=M.dtype, device=device(M)), M)
    flat = xp.reshape(M, (-1,))
    flat[:: n + 1] = 0.0
    return xp.reshape(flat, (n, n))


# --------------------------------------------------------------------------- cosine, correlation


def _cosine(x, y, xp, same, w, centre: bool):
    metric = "correlation" if centre else "cosine"

    def unit(v, name):
        if centre:
            mu = xp.mean(v, axis=1) if w is None else xp.sum(v * w, axis=1) / xp.sum(w)
            v = v - mu[:, None]
        if w is not None:
            v = v * xp.sqrt(w)
        nv = xp.sqrt(xp.sum(v * v, axis=1))
        if not is_lazy(v) and not bool(xp.all(nv > 0)):
            i = int(xp.argmin(nv))
            what = "a constant row" if centre else "a zero vector"
            raise ValueError(
                f"{name} has {what} (row {i}); the {metric} distance is undefined for "
                f"{'constant vectors' if centre else 'zero vectors'}: drop or perturb that "
                "point, or use another metric"
            )
        return v / nv[:, None]

    xn = unit(x, "x")
    yn = xn if same else unit(y, "y")
    M = xp.matmul(xn, yn.T)
    M *= -1.0
    M += 1.0
    if not (is_lazy(M) or is_lazy(x)):

        def exact(ii, jj):  # 1 - cos = |u_n - v_n|^2 / 2, without cancellation
            dlt = xp.take(xn, ii, axis=0) - xp.take(yn, jj, axis=0)
            return xp.sum(dlt * dlt, axis=1) * 0.5

        M = _recompute_any(M, M <= _TAU, exact, xp)
    M = clip_inplace(M, xp, 0.0, 2.0) if not is_jax_namespace(xp) else xp.clip(M, 0.0, 2.0)
    if same:
        M = _symmetrise_zero_diag(M, xp)
    return M


def _recompute_any(M, flag, exact, xp):
    if is_numpy_namespace(xp):
        ii, jj = np.nonzero(flag)
        if ii.size:
            M[ii, jj] = exact(ii, jj)
        return M
    return _recompute(M, flag, exact, xp)


# --------------------------------------------------------------------------- boolean metrics


def _boolean(x, y, xp, same, metric, w):
    """dice, jaccard, rogerstanimoto, russellrao, sokalsneath, yule from the counts."""

    def bits(v, name):
        if metric == "jaccard":  # scipy's jaccard compares x != 0 with y != 0
            return xp.astype(v != 0, v.dtype)
        if not is_lazy(v) and not bool(xp.all((v == 0) | (v == 1))):
            raise ValueError(
                f"{name} has entries other than 0 and 1; metric={metric!r} compares boolean "
                f"vectors: pass e.g. {name} != 0 (cdist's values on other numbers are not distances)"
            )
        return v

    X = bits(x, "x")
    Y = X if same else bits(y, "y")
    Xw = X if w is None else X * w
    nXw = (1.0 - X) if w is None else (1.0 - X) * w
    ntt = xp.matmul(Xw, Y.T)
    ntf = xp.matmul(Xw, (1.0 - Y).T)
    nft = xp.matmul(nXw, Y.T)
    zero = xp.zeros_like(ntt)

    def ratio(num, den):  # num / den, 0 where num == 0 (0/0: coinciding vectors)
        nz = num != 0
        return xp.where(nz, num / xp.where(nz, den, xp.ones_like(den)), zero)

    if metric == "dice":
        return ratio(ntf + nft, 2.0 * ntt + ntf + nft)
    if metric == "jaccard":
        return ratio(ntf + nft, ntt + ntf + nft)
    if metric == "sokalsneath":
        R = 2.0 * (ntf + nft)
        return ratio(R, ntt + R)
    total = float(x.shape[1]) if w is None else xp.sum(w)
    if metric == "russellrao":
        return (total - ntt) / total
    nff = xp.matmul(nXw, (1.0 - Y).T)
    if metric == "rogerstanimoto":
        R = 2.0 * (ntf + nft)
        return ratio(R, ntt + nff + R)
    half_R = ntf * nft  # yule
    return ratio(2.0 * half_R, ntt * nff + half_R)


# --------------------------------------------------------------------------- direct metrics


def _probabilities(v, name, xp):
    """Rows of ``v`` divided by their totals (jensenshannon); negative or empty rows raise."""
    tot = xp.sum(v, axis=1)
    if not is_lazy(v):
        if not float(to_host(xp.min(v))) >= 0:
            raise ValueError(
                f"{name} has negative entries; metric='jensenshannon' compares probability "
                "vectors (non-negative rows)"
            )
        if not bool(xp.all(tot > 0)):
            i = int(xp.argmin(tot))
            raise ValueError(
                f"{name} row {i} sums to 0; metric='jensenshannon' compares probability "
                "vectors: every row needs positive total"
            )
    return v / tot[:, None]


def _direct(x, y, xp, metric: str, p: float, w=None):
    """The per-feature metrics in row tiles, looping over features."""
    n, d = x.shape
    m = y.shape[0]
    cols = [xp.reshape(y[:, k], (1, m)) for k in range(d)]
    wk = None if w is None else [w[k] for k in range(d)]
    rows = max(1, _TILE // m)
    jax = is_jax_namespace(xp)
    out = None if jax else xp.empty((n, m), dtype=x.dtype, device=device(x))
    blocks = []
    scaled = metric == "minkowski" and _minkowski_needs_scaling(x, y, xp, p)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        xb = x[i0:i1, :]
        if metric == "minkowski":
            blk = _minkowski_tile(xb, cols, xp, p, wk) if scaled else _minkowski_tile_plain(xb, cols, xp, p, wk)
        else:
            blk = _TILES[metric](xb, cols, xp, wk)
        if jax:
            blocks.append(blk)
        else:
            out[i0:i1, :] = blk
    return xp.concat(blocks, axis=0) if jax else out


def _weighted(t, wk, k):
    return t if wk is None else t * wk[k]


def _l1_tile(xb, cols, xp, wk=None):
    acc = None
    for k in range(len(cols)):
        t = _weighted(xp.abs(xb[:, k : k + 1] - cols[k]), wk, k)
        acc = t if acc is None else acc + t
    return acc


def _linf_tile(xb, cols, xp, wk=None):
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        acc = t if acc is None else xp.maximum(acc, t)
    return acc


def _braycurtis_tile(xb, cols, xp, wk=None):
    num = den = None
    for k in range(len(cols)):
        u, v = xb[:, k : k + 1], cols[k]
        a, b = _weighted(xp.abs(u - v), wk, k), _weighted(xp.abs(u + v), wk, k)
        num, den = (a, b) if num is None else (num + a, den + b)
    nz = num != 0
    return xp.where(nz, num / xp.where(nz, den, xp.ones_like(den)), xp.zeros_like(num))


def _canberra_tile(xb, cols, xp, wk=None):
    acc = None
    for k in range(len(cols)):
        u, v = xb[:, k : k + 1], cols[k]
        num = xp.abs(u - v)
        den = xp.abs(u) + xp.abs(v)
        nz = num != 0  # 0/0 (both zero) counts 0, as cdist
        t = _weighted(xp.where(nz, num / xp.where(nz, den, xp.ones_like(den)), xp.zeros_like(num)), wk, k)
        acc = t if acc is None else acc + t
    return acc


def _hamming_tile(xb, cols, xp, wk=None):
    acc = None
    for k in range(len(cols)):
        t = _weighted(xp.astype(xb[:, k : k + 1] != cols[k], xb.dtype), wk, k)
        acc = t if acc is None else acc + t
    total = float(len(cols)) if wk is None else sum(wk[1:], wk[0])
    return acc / total


def _jensenshannon_tile(xb, cols, xp, wk=None):
    def rel_entr(a, mid):  # a log(a / mid), 0 where a == 0
        pos = a > 0
        return xp.where(pos, a * xp.log(xp.where(pos, a, xp.ones_like(a)) / mid), xp.zeros_like(a))

    acc = None
    for k in range(len(cols)):
        u, v = xb[:, k : k + 1], cols[k]
        mid = (u + v) / 2.0
        safe = xp.where(mid > 0, mid, xp.ones_like(mid))
        t = rel_entr(u + xp.zeros_like(v), safe) + rel_entr(v + xp.zeros_like(u), safe)
        acc = t if acc is None else acc + t
    acc = acc / 2.0
    pos = acc > 0
    return xp.where(pos, xp.sqrt(xp.where(pos, acc, xp.ones_like(acc))), xp.zeros_like(acc))


_TILES = {
    "cityblock": _l1_tile,
    "chebyshev": _linf_tile,
    "braycurtis": _braycurtis_tile,
    "canberra": _canberra_tile,
    "hamming": _hamming_tile,
    "jensenshannon": _jensenshannon_tile,
}


def _minkowski_needs_scaling(x, y, xp, p: float) -> bool:
    """Whether plain ``sum |u_k - v_k|^p`` could overflow or lose the data's scale.

    ``B`` bounds every coordinate difference (one O((n+m)d) pass). The plain sum
    is safe when ``d * B^p`` is finite and ``B^p`` is a normal number with full
    precision; only pairs more than ``~tiny^(1/p)`` apart in absolute terms
    (1e-103 for p = 3 in float64) are then resolved, as in ``cdist``.
    Lazy arrays take the always-safe scaled path.
    """
    if is_lazy(x) or is_lazy(y):
        return True
    hi = xp.maximum(xp.max(x, axis=0) - xp.min(y, axis=0), xp.max(y, axis=0) - xp.min(x, axis=0))
    B = float(to_host(xp.max(hi)))  # to_host: detached from autograd
    if B == 0.0:
        return False
    fi = xp.finfo(x.dtype)
    try:
        Bp = B**p
    except OverflowError:
        return True
    return not (Bp * x.shape[1] <= float(fi.max) / 4 and Bp >= float(fi.smallest_normal) / float(fi.eps))


def _minkowski_tile_plain(xb, cols, xp, p: float, wk=None):
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        t **= p
        t = _weighted(t, wk, k)
        acc = t if acc is None else acc + t
    # 0 ** (1/p) has an infinite derivative: keep equal points at 0 with a
    # finite gradient under autograd
    pos = acc > 0
    acc = xp.where(pos, acc, xp.ones_like(acc))
    acc **= 1.0 / p
    return xp.where(pos, acc, xp.zeros_like(acc))


def _minkowski_tile(xb, cols, xp, p: float, wk=None):
    s = _linf_tile(xb, cols, xp)  # the scale: |u - v|_inf
    safe = xp.where(s > 0, s, xp.ones_like(s))
    inv = 1.0 / safe
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        t *= inv
        t = _weighted(t**p, wk, k)
        acc = t if acc is None else acc + t
    # where s == 0 (equal points) use 1 so that the result is 0 with a finite
    # gradient under autograd (no 0 ** (1/p)); with weights acc may be 0 too
    pos = (s > 0) & (acc > 0)
    acc = xp.where(pos, acc, xp.ones_like(acc))
    return xp.where(pos, s * acc ** (1.0 / p), xp.zeros_like(s))


def ordinal_cost(k: int, *, p: float = 1, dtype=None, xp=None) -> Array:
    r"""The cost :math:`M_{ij} = |i - j|^p` between ``k`` ordered classes.

    The ground metric of ordinal labels (ages, ratings, digits): Dhariwal &
    Inala (section 4.2) train MNIST with :math:`d_p(i,j) =
    |i-j|^p`; ``p = 0`` is the 0-1 cost (every mistake costs 1, the diagonal
    0), and ``p = 2`` with the 1-D EMD gives the squared EMD of Hou et al. 2016. It is
    a metric for ``0 <= p <= 1``.

    Parameters
    ----------
    k : int
        Number of classes (``>= 1``).
    p : float
        Exponent, ``>= 0``.
    dtype : dtype, optional
        Floating dtype of the result (default float64 of ``xp``).
    xp : namespace, optional
        Array namespace of the result (default numpy).

    Returns
    -------
    M : array, shape (k, k)

    Examples
    --------
    >>> ordinal_cost(4, p=2)
    array([[0., 1., 4., 9.],
           [1., 0., 1., 4.],
           [4., 1., 0., 1.],
           [9., 4., 1., 0.]])
    >>> ordinal_cost(3, p=0)
    array([[0., 1., 1.],
           [1., 0., 1.],
           [1., 1., 0.]])
    """
    k = check_int("k", k, minimum=1)
    p = check_scalar("p", p, nonneg=True)
    xp = _default_xp(xp)
    dtype = check_float_dtype(xp, dtype)
    i = xp.arange(k, dtype=dtype)
    D = xp.abs(i[:, None] - i[None, :])
    if p == 0:
        return xp.astype(D > 0, dtype)
    if p == 1:
        return D
    return D**p


def grid_cost(d: int, *, metric: str = "euclidean", dtype=None, xp=None) -> Array:
    r"""The cost between the ``d * d`` cells of a ``d x d`` label grid.

    Cell ``(r, c)`` has index ``r * d + c`` (row-major, as
    ``numpy.ravel_multi_index``) and coordinates ``(r, c)`` in grid units, so
    neighbouring cells are 1 apart. This is the label space of the noisy-label
    experiment of Dhariwal & Inala (section 4.3), where labels are
    the points of a 2-D grid with their Euclidean distance.

    Parameters
    ----------
    d : int
        Side of the grid (``>= 1``).
    metric : {"euclidean", "sqeuclidean", "cityblock", "chebyshev"}
        Distance between cell coordinates.
    dtype : dtype, optional
        Floating dtype of the result (default float64 of ``xp``).
    xp : namespace, optional
        Array namespace of the result (default numpy).

    Returns
    -------
    M : array, shape (d * d, d * d)
        Computed exactly from integer coordinate differences.

    Examples
    --------
    >>> M = grid_cost(3)
    >>> M.shape
    (9, 9)
    >>> print(f"{float(M[0, 8]):.4f}")   # corner (0, 0) to corner (2, 2)
    2.8284
    >>> grid_cost(2, metric="cityblock")
    array([[0., 1., 1., 2.],
           [1., 0., 2., 1.],
           [1., 2., 0., 1.],
           [2., 1., 1., 0.]])
    """
    d = check_int("d", d, minimum=1)
    metric = check_choice("metric", metric, ("euclidean", "sqeuclidean", "cityblock", "chebyshev"))
    xp = _default_xp(xp)
    dtype = check_float_dtype(xp, dtype)
    idx = xp.arange(d * d)
    r = xp.astype(idx // d, dtype)
    c = xp.astype(idx % d, dtype)
    dr = xp.abs(r[:, None] - r[None, :])
    dc = xp.abs(c[:, None] - c[None, :])
    if metric == "cityblock":
        return dr + dc
    if metric == "chebyshev":
        return xp.maximum(dr, dc)
    sq = dr * dr + dc * dc
    return sq if metric == "sqeuclidean" else xp.sqrt(sq)


def normalize_cost(M, *, scale: float = 1.0) -> Array:
    r"""Rescale a non-negative cost to ``[0, scale]``: :math:`M \, \mathrm{scale} / \max M`.

    Dhariwal & Inala (section 4.2) normalise the ground metric so
    that all distances lie in ``[0, 10)`` (``scale=10``): Sinkhorn with a fixed
    regularisation converges faster on a larger cost scale, up to the point
    where ``exp(-M / reg)`` underflows. The largest entry becomes exactly
    ``scale``.

    Parameters
    ----------
    M : array, shape (n, m)
        Finite, non-negative cost with at least one positive entry.
    scale : float
        Target maximum, ``> 0``.

    Returns
    -------
    array, shape (n, m)
        Same namespace, device and floating dtype as ``M``.

    Raises
    ------
    ValueError
        ``M`` not 2-D, with NaN/inf or negative entries, or all zero.

    Examples
    --------
    >>> import numpy as np
    >>> normalize_cost(np.array([[0.0, 2.0], [4.0, 1.0]]), scale=10)
    array([[ 0. ,  5. ],
           [10. ,  2.5]])
    """
    scale = check_scalar("scale", scale, positive=True)
    xp = namespace(M)
    M = check_cost(M, xp, name="M", nonneg=True)
    if M.shape[0] == 0 or M.shape[1] == 0:
        raise ValueError(f"M is empty (shape {tuple(M.shape)}); pass a cost with at least one entry")
    mx = xp.max(M)
    if not is_lazy(M) and not float(to_host(mx)) > 0:  # to_host: detached from autograd
        raise ValueError("M is all zeros; it cannot be normalised (every cost would be 0/0)")
    out = M / mx
    if scale != 1.0:
        out = out * scale
    return out
