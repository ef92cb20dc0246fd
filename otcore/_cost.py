"""Ground costs: pairwise distances between points, label costs, normalisation.

The cost matrix :math:`M` is the *ground metric* of optimal transport: the
price of moving one unit of mass from bin :math:`i` to bin :math:`j`. This
module builds the usual ones:

- :func:`cost_matrix` -- distances between two point clouds (the
  ``scipy.spatial.distance.cdist`` metrics ``sqeuclidean``, ``euclidean``,
  ``cityblock``, ``minkowski``, ``chebyshev``, ``cosine``), on any array-API
  namespace;
- :func:`ordinal_cost` -- :math:`|i - j|^p` between ``k`` ordered classes
  (the digit experiment of Dhariwal & Inala, seed 000, section 4.2);
- :func:`grid_cost` -- distances between the cells of a ``d x d`` label grid
  (the noisy-label experiment of seed 000, section 4.3);
- :func:`normalize_cost` -- rescale a cost to ``[0, scale]`` (seed 000
  normalises to ``[0, 10)`` for faster Sinkhorn convergence).

All functions return arrays of the input namespace, on the input device, in
float64 unless the inputs are float32 (integers and booleans are promoted to
float64).
"""

from __future__ import annotations

import math

from array_api_compat import is_jax_namespace, is_numpy_namespace, is_torch_namespace

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

#: The metrics :func:`cost_matrix` understands (the names of ``scipy.spatial.distance.cdist``).
METRICS = ("sqeuclidean", "euclidean", "cityblock", "minkowski", "chebyshev", "cosine")

# Elements of one (rows x m) tile in the direct (non-GEMM) metrics: the tile and
# its temporaries stay in cache (256 KiB in float64), so memory beyond the output
# is O(tile + m * d) however large n, m and d are.
_TILE = 1 << 15


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


def cost_matrix(x, y=None, *, metric: str = "sqeuclidean", p: float = 2) -> Array:
    r"""Pairwise distances between the points of ``x`` and ``y``.

    .. math::

        M_{ij} = d(x_i, y_j), \qquad
        d \in \{\|u-v\|_2^2,\ \|u-v\|_2,\ \|u-v\|_1,\ \|u-v\|_p,\
        \|u-v\|_\infty,\ 1 - \tfrac{u\cdot v}{\|u\|\,\|v\|}\},

    the metrics ``"sqeuclidean"``, ``"euclidean"``, ``"cityblock"``,
    ``"minkowski"``, ``"chebyshev"`` and ``"cosine"`` of
    :func:`scipy.spatial.distance.cdist`, with which the result agrees.

    Parameters
    ----------
    x : array, shape (n, d) or (n,)
        Source points, one per row. A 1-D array is ``n`` scalar points,
        i.e. shape ``(n, 1)`` (not one point in ``n`` dimensions).
    y : array, shape (m, d) or (m,), optional
        Target points (same number of features as ``x``). ``None`` means
        ``x`` itself; the result is then exactly symmetric with an exactly
        zero diagonal.
    metric : str
        One of :data:`METRICS`.
    p : float
        Order of the ``"minkowski"`` metric, ``p >= 1`` (``math.inf`` gives
        ``"chebyshev"``). Ignored by the other metrics.

    Returns
    -------
    M : array, shape (n, m)
        Non-negative distances in the namespace and on the device of ``x``;
        float64 unless the inputs are float32.

    Notes
    -----
    *sqeuclidean / euclidean* use the GEMM expansion
    :math:`\|x_i-y_j\|^2 = \|x_i\|^2 + \|y_j\|^2 - 2\,x_i\cdot y_j` (one matrix
    product, the fast path on every backend), on data first *centred* at the
    mean of all points (distances are translation invariant), and clamped at
    0. Without centring the expansion cancels catastrophically on data with a
    large offset (``x + 1e6`` loses all digits of unit distances in float64);
    with it, the absolute error of :math:`M_{ij}` is about
    :math:`\epsilon\,(\|x_i-c\|^2 + \|y_j-c\|^2)`, so only pairs much closer
    than the spread of the clouds lose relative accuracy (as in scikit-learn
    and ``ot.dist``). ``"minkowski"`` with ``p = 2`` uses this path too.

    *cityblock, chebyshev, minkowski* are computed directly, in row tiles of
    about 32k entries looping over features, so no ``n * m * d`` intermediate
    is ever built (extra memory is ``O(m d)`` beyond the output). On numpy
    input, cityblock and chebyshev call ``scipy.spatial.distance.cdist``
    instead (the same sums and maxima in one C loop, 2-3x faster than the
    array-API tiles; float32 results are computed in float64 and rounded). Minkowski
    distances are evaluated as :math:`s\,(\sum_k (|u_k-v_k|/s)^p)^{1/p}` with
    :math:`s = \|u-v\|_\infty`, which neither overflows nor underflows for
    large ``p`` (the scaling pass is skipped when a bound on the coordinate
    differences shows that the plain sum cannot overflow or underflow).

    *cosine* normalises the rows and takes ``1 - x_n y_n^T``, clipped to
    ``[0, 2]``; a zero vector has no direction and raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> cost_matrix(x, metric="euclidean")
    array([[0., 5.],
           [5., 0.]])
    >>> cost_matrix(x, np.array([[0.0, 1.0]]), metric="cityblock")
    array([[1.],
           [6.]])
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
    xp = namespace(x, y)
    x = as_float(x, xp, name="x")
    y_ = None if y is None else as_float(y, xp, name="y")
    dtype = float_dtype(xp, x, y_)
    x = _as_points(x, "x", xp, dtype)
    same = y_ is None
    y_ = x if same else _as_points(y_, "y", xp, dtype)
    if x.shape[1] != y_.shape[1]:
        raise ValueError(
            f"x and y must have the same number of features (columns): x has shape "
            f"{tuple(x.shape)}, y has shape {tuple(y_.shape)}"
        )
    if metric in ("sqeuclidean", "euclidean"):
        M = _sqeuclidean(x, y_, xp, same)
        if metric == "euclidean":
            # in place on numpy and torch (their ``**= 0.5`` is sqrt, bit for bit)
            M = _isqrt(M) if (is_numpy_namespace(xp) or is_torch_namespace(xp)) else xp.sqrt(M)
        return M
    if metric == "cosine":
        return _cosine(x, y_, xp, same)
    if metric in ("cityblock", "chebyshev") and is_numpy_namespace(xp):
        # numpy input: scipy's C loop is the same computation without temporaries
        from scipy.spatial.distance import cdist

        return xp.astype(xp.asarray(cdist(x, y_, metric)), dtype, copy=False)
    return _direct(x, y_, xp, metric, p)


def _isqrt(M):
    """In-place square root: no second n x m array."""
    M **= 0.5
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


def _sqeuclidean(x, y, xp, same: bool):
    n = x.shape[0]
    if same:
        c = xp.mean(x, axis=0)
        xc = x - c
        yc = xc
    else:
        m = y.shape[0]
        c = (xp.sum(x, axis=0) + xp.sum(y, axis=0)) / (n + m)
        xc = x - c
        yc = y - c
    nx = xp.sum(xc * xc, axis=1)
    ny = nx if same else xp.sum(yc * yc, axis=1)
    M = xp.matmul(xc * -2.0, yc.T)  # scaling the (n, d) factor is exact and saves a pass
    M += nx[:, None]
    M += ny[None, :]
    M = clip_inplace(M, xp, 0.0)
    if same:
        M = _symmetrise_zero_diag(M, xp)
    return M


def _cosine(x, y, xp, same: bool):
    def unit(v, name):
        nv = xp.sqrt(xp.sum(v * v, axis=1))
        if not is_lazy(v) and not bool(xp.all(nv > 0)):
            i = int(xp.argmin(nv))
            raise ValueError(
                f"{name} has a zero vector (row {i}); the cosine distance is undefined for "
                "zero vectors: drop or perturb that point, or use another metric"
            )
        return v / nv[:, None]

    xn = unit(x, "x")
    yn = xn if same else unit(y, "y")
    M = xp.matmul(xn, yn.T)
    M *= -1.0
    M += 1.0
    M = clip_inplace(M, xp, 0.0, 2.0)
    if same:
        M = _symmetrise_zero_diag(M, xp)
    return M


def _direct(x, y, xp, metric: str, p: float):
    """cityblock / chebyshev / minkowski in row tiles, looping over features."""
    n, d = x.shape
    m = y.shape[0]
    cols = [xp.reshape(y[:, k], (1, m)) for k in range(d)]
    rows = max(1, _TILE // m)
    jax = is_jax_namespace(xp)
    out = None if jax else xp.empty((n, m), dtype=x.dtype, device=device(x))
    blocks = []
    scaled = metric == "minkowski" and _minkowski_needs_scaling(x, y, xp, p)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        xb = x[i0:i1, :]
        if metric == "minkowski":
            blk = _minkowski_tile(xb, cols, xp, p) if scaled else _minkowski_tile_plain(xb, cols, xp, p)
        else:
            blk = _l1_linf_tile(xb, cols, xp, metric)
        if jax:
            blocks.append(blk)
        else:
            out[i0:i1, :] = blk
    return xp.concat(blocks, axis=0) if jax else out


def _l1_linf_tile(xb, cols, xp, metric: str):
    """cityblock (sum) or chebyshev (max) of ``|xb[:, k] - y_k|`` over the features ``k``."""
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        if acc is None:
            acc = t
        elif metric == "cityblock":
            acc += t
        else:
            acc = xp.maximum(acc, t)
    return acc


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


def _minkowski_tile_plain(xb, cols, xp, p: float):
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        t **= p
        if acc is None:
            acc = t
        else:
            acc += t
    # 0 ** (1/p) has an infinite derivative: keep equal points at 0 with a
    # finite gradient under autograd
    pos = acc > 0
    acc = xp.where(pos, acc, xp.ones_like(acc))
    acc **= 1.0 / p
    return xp.where(pos, acc, xp.zeros_like(acc))


def _minkowski_tile(xb, cols, xp, p: float):
    s = _l1_linf_tile(xb, cols, xp, "chebyshev")  # the scale: |u - v|_inf
    safe = xp.where(s > 0, s, xp.ones_like(s))
    inv = 1.0 / safe
    acc = None
    for k in range(len(cols)):
        t = xp.abs(xb[:, k : k + 1] - cols[k])
        t *= inv
        t = t**p
        if acc is None:
            acc = t
        else:
            acc += t
    # acc >= 1 where s > 0; where s == 0 (equal points) use 1 so that the
    # result is 0 with a finite gradient under autograd (no 0 ** (1/p))
    acc = xp.where(s > 0, acc, xp.ones_like(acc))
    return s * acc ** (1.0 / p)


def ordinal_cost(k: int, *, p: float = 1, dtype=None, xp=None) -> Array:
    r"""The cost :math:`M_{ij} = |i - j|^p` between ``k`` ordered classes.

    The ground metric of ordinal labels (ages, ratings, digits): seed 000
    (Dhariwal & Inala, section 4.2) trains MNIST with :math:`d_p(i,j) =
    |i-j|^p`; ``p = 0`` is the 0-1 cost (every mistake costs 1, the diagonal
    0), and ``p = 2`` with the 1-D EMD gives the squared EMD of seed 001. It is
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
    experiment of seed 000 (Dhariwal & Inala, section 4.3), where labels are
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

    Seed 000 (Dhariwal & Inala, section 4.2) normalises the ground metric so
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
