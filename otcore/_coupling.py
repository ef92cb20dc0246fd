r"""Kantorovich couplings and Monge maps: checks, marginals, costs, conversions.

*Kantorovich side.* A coupling (transport plan) of histograms
:math:`a \in \mathbb{R}_+^n` and :math:`b \in \mathbb{R}_+^m` is a matrix

.. math::

    P \in U(a, b) = \{P \in \mathbb{R}_+^{n \times m} :\ P\mathbf{1}_m = a,\
    P^\top \mathbf{1}_n = b\},

and its cost under a ground cost :math:`M` is :math:`\langle P, M\rangle =
\sum_{ij} P_{ij} M_{ij}` (Dhariwal & Inala, eq. 1: the Wasserstein loss is its
minimum over :math:`U(a, b)`). :func:`is_coupling`, :func:`marginals`,
:func:`transport_cost` and :func:`independent_coupling` work on plans of
shape ``(..., n, m)``: leading axes are a batch, as everywhere in otcore.

*Monge side.* A map :math:`\sigma: \{0..n-1\} \to \{0..m-1\}` moves each of
``n`` equally weighted points to one target; its plan puts mass :math:`1/n`
on each pair :math:`(i, \sigma(i))`. :func:`assignment_plan` builds that plan
(or the plan of any list of pairs, e.g. from
:func:`scipy.optimize.linear_sum_assignment`), :func:`monge_cost` its cost,
and :func:`barycentric_map` goes back from a plan to a map,
:math:`T(x_i) = \sum_j P_{ij} y_j / \sum_j P_{ij}`.
"""

from __future__ import annotations

from array_api_compat import is_jax_namespace

from otcore._array import (
    Array,
    array0,
    as_float,
    device,
    float_dtype,
    is_lazy,
    namespace,
    scatter_add_2d,
)
from otcore._validate import (
    batch_shape,
    check_choice,
    check_cost,
    check_float_dtype,
    check_histograms,
    check_index,
    check_int,
    check_scalar,
    check_values,
)

__all__ = [
    "is_coupling",
    "marginals",
    "transport_cost",
    "independent_coupling",
    "assignment_plan",
    "monge_cost",
    "barycentric_map",
]


def _check_plan(P, xp, name: str = "P", dtype=None) -> Array:
    P = as_float(P, xp, dtype, name=name)
    if P.ndim < 2:
        raise ValueError(
            f"{name} must be a transport plan of shape (..., n, m) (leading axes a batch), "
            f"got shape {tuple(P.shape)}"
        )
    if P.shape[-1] == 0 or P.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(P.shape)}); a plan needs n, m >= 1")
    check_values(P, name, xp, nonneg=True, what="masses")
    return P


def is_coupling(P, a, b, *, atol: float = 1e-8):
    r"""Whether ``P`` is a coupling of ``a`` and ``b``: :math:`P \ge 0,\ P\mathbf 1 = a,\ P^\top\mathbf 1 = b`.

    Entries may be as low as ``-atol`` and the marginals may differ from
    ``a`` and ``b`` by ``atol`` (absolute, per bin): scale ``atol`` with the
    total mass when it is not 1, and loosen it for float32 plans.

    Parameters
    ----------
    P : array, shape (..., n, m)
        Candidate plan (finite; NaN or inf make it not a coupling).
    a : array, shape (..., n)
        Source histogram(s).
    b : array, shape (..., m)
        Target histogram(s); batch shapes of ``P``, ``a``, ``b`` broadcast.
    atol : float
        Absolute tolerance.

    Returns
    -------
    bool or array of bool
        A Python ``bool`` when ``P`` is one plan (2-D) and ``a``, ``b`` are
        1-D; otherwise a boolean array of the broadcast batch shape, in the
        namespace of the inputs (also for lazy JAX/dask inputs).

    Raises
    ------
    ValueError
        Shapes that do not match (``a`` needs ``n`` bins, ``b`` needs ``m``),
        invalid histograms (NaN, negative, empty, all-zero).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([0.5, 0.5]); b = np.array([0.25, 0.75])
    >>> is_coupling(independent_coupling(a, b), a, b)
    True
    >>> is_coupling(np.array([[0.5, 0.0], [0.0, 0.5]]), a, b)
    False
    """
    atol = check_scalar("atol", atol, nonneg=True)
    namespace(P, a, b)  # one library for all three (TypeError otherwise)
    xp, a, b, _ = check_histograms(a, b, None, check_mass=False)
    P = as_float(P, xp, name="P")
    dtype = float_dtype(xp, P, a, b)
    if P.ndim < 2:
        raise ValueError(f"P must be a plan of shape (..., n, m), got shape {tuple(P.shape)}")
    n, m = P.shape[-2], P.shape[-1]
    if a.shape[-1] != n:
        raise ValueError(f"a has {a.shape[-1]} bins but P has {n} rows; P must have shape (..., len(a), len(b))")
    if b.shape[-1] != m:
        raise ValueError(f"b has {b.shape[-1]} bins but P has {m} columns; P must have shape (..., len(a), len(b))")
    batch = batch_shape("a", a.shape[:-1], "b", b.shape[:-1])
    batch = batch_shape("P", P.shape[:-2], "a and b", batch)
    P, a, b = (xp.astype(v, dtype) if v.dtype != dtype else v for v in (P, a, b))
    ok = xp.all(xp.isfinite(P), axis=(-2, -1))
    ok = ok & xp.all(P >= -atol, axis=(-2, -1))
    ok = ok & xp.all(xp.abs(xp.sum(P, axis=-1) - a) <= atol, axis=-1)
    ok = ok & xp.all(xp.abs(xp.sum(P, axis=-2) - b) <= atol, axis=-1)
    ok = xp.broadcast_to(ok, batch)
    if batch == () and not is_lazy(ok):
        return bool(ok)
    return ok


def marginals(P) -> tuple[Array, Array]:
    r"""The marginals of a plan: :math:`(P\mathbf 1_m,\ P^\top \mathbf 1_n)`.

    Parameters
    ----------
    P : array, shape (..., n, m)
        Finite, non-negative plan(s).

    Returns
    -------
    a : array, shape (..., n)
        Row sums ``P.sum(-1)``: the mass leaving each source bin.
    b : array, shape (..., m)
        Column sums ``P.sum(-2)``: the mass arriving in each target bin.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = marginals(np.array([[0.25, 0.25], [0.0, 0.5]]))
    >>> a, b
    (array([0.5, 0.5]), array([0.25, 0.75]))
    """
    xp = namespace(P)
    P = _check_plan(P, xp)
    return xp.sum(P, axis=-1), xp.sum(P, axis=-2)


def transport_cost(P, M) -> Array:
    r"""The cost of a plan, :math:`\langle P, M\rangle = \sum_{ij} P_{ij} M_{ij}`.

    Parameters
    ----------
    P : array, shape (..., n, m)
        Finite, non-negative plan(s); leading axes are a batch.
    M : array, shape (n, m)
        One finite cost shared by the batch (negative entries allowed: the
        cost is linear in ``M``).

    Returns
    -------
    array, shape (...)
        A 0-d array for one plan, in the namespace of the inputs. Computed as
        one matrix-vector product over the flattened plans (no ``P * M``
        temporary).

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.5, 0.0], [0.0, 0.5]]); M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> transport_cost(P, M)
    array(0.)
    >>> transport_cost(np.stack([P, P[:, ::-1]]), M)
    array([0., 1.])
    """
    xp = namespace(P, M)
    P = as_float(P, xp, name="P")
    M = as_float(M, xp, name="M")
    dtype = float_dtype(xp, P, M)
    P = _check_plan(P, xp, dtype=dtype)
    n, m = P.shape[-2], P.shape[-1]
    M = check_cost(M, xp, name="M", dtype=dtype, nonneg=False)
    if tuple(M.shape) != (n, m):
        raise ValueError(
            f"M has shape {tuple(M.shape)} but P has plans of shape ({n}, {m}); "
            "M must have shape (n, m) = P.shape[-2:]"
        )
    batch = tuple(P.shape[:-2])
    Pf = xp.reshape(P, batch + (n * m,))
    return array0(xp.matmul(Pf, xp.reshape(M, (n * m,))), xp)


def independent_coupling(a, b) -> Array:
    r"""The independent (product) coupling :math:`P = a b^\top / \sum_i a_i`.

    Its marginals are ``a`` and ``b`` (when the total masses agree), and it
    is the limit of the entropic plan as the regularisation grows: the
    maximum-entropy element of :math:`U(a, b)`.

    Parameters
    ----------
    a : array, shape (..., n)
    b : array, shape (..., m)
        Histograms with equal total masses (relative tolerance 1e-6 in
        float64, 1e-4 in float32); batch shapes broadcast.

    Returns
    -------
    P : array, shape (..., n, m)
        Batch shape is the broadcast of those of ``a`` and ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> independent_coupling(np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    array([[0.5, 0.5],
           [1.5, 1.5]])
    """
    xp, a, b, _ = check_histograms(a, b, None)
    mass = xp.sum(a, axis=-1)
    return (a / mass[..., None])[..., :, None] * b[..., None, :]


def assignment_plan(rows, cols, n: int, m: int, *, mass=None, dtype=None) -> Array:
    r"""The dense ``(n, m)`` plan of an assignment given as index pairs.

    :math:`P_{r_t c_t} = w_t` for each pair ``t``, zero elsewhere. With the
    default ``mass`` every pair carries :math:`1/k` (``k = len(rows)``): the
    plan of matching ``k`` equally weighted points, total mass 1. A complete
    assignment of ``n = m`` uniform points (``linear_sum_assignment`` on a
    square cost) gives a permutation matrix divided by ``n``, a coupling of
    the uniform histograms; a map ``rows = arange(n), cols = sigma`` gives the
    plan whose cost is :func:`monge_cost`. Repeated pairs add up.

    Parameters
    ----------
    rows, cols : integer arrays, shape (k,)
        Source and target indices of the pairs, ``0 <= rows < n``,
        ``0 <= cols < m`` (e.g. the output of
        :func:`scipy.optimize.linear_sum_assignment`).
    n, m : int
        Shape of the plan.
    mass : float or array of shape (k,), optional
        Mass per pair (non-negative, finite); default ``1 / k``.
    dtype : dtype, optional
        Floating dtype of the plan (``float32`` or ``float64`` of the
        namespace); default float64 (or the floating dtype of an array
        ``mass``).

    Returns
    -------
    P : array, shape (n, m)
        In the namespace and on the device of ``rows`` / ``cols``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import linear_sum_assignment
    >>> M = np.array([[4.0, 1.0], [2.0, 8.0]])
    >>> r, c = linear_sum_assignment(M)
    >>> assignment_plan(r, c, 2, 2)
    array([[0. , 0.5],
           [0.5, 0. ]])
    """
    n = check_int("n", n, minimum=1)
    m = check_int("m", m, minimum=1)
    mass_is_array = mass is not None and hasattr(mass, "shape") and getattr(mass, "ndim", 0) > 0
    xp = namespace(rows, cols, mass if mass_is_array else None)
    rows = check_index(rows, "rows", xp, n, "n")
    cols = check_index(cols, "cols", xp, m, "m")
    if rows.ndim != 1 or cols.ndim != 1 or rows.shape[0] != cols.shape[0]:
        raise ValueError(
            f"rows and cols must be 1-D of the same length (one entry per pair), got shapes "
            f"{tuple(rows.shape)} and {tuple(cols.shape)}"
        )
    k = rows.shape[0]
    dev = device(rows)
    if dtype is None:
        dtype = mass.dtype if mass_is_array and xp.isdtype(mass.dtype, "real floating") else xp.float64
    else:  # an integer dtype would silently truncate the masses 1/k to 0
        dtype = check_float_dtype(xp, dtype)
    if mass is None:
        vals = xp.full((k,), 1.0 / k, dtype=dtype, device=dev)
    elif mass_is_array:
        vals = as_float(mass, xp, dtype, name="mass")
        if tuple(vals.shape) != (k,):
            raise ValueError(f"mass must be a number or have one entry per pair, shape ({k},); got {tuple(vals.shape)}")
        check_values(vals, "mass", xp, nonneg=True, what="masses")
    else:
        w = check_scalar("mass", mass, nonneg=True)
        vals = xp.full((k,), w, dtype=dtype, device=dev)
    return scatter_add_2d(xp, rows, cols, vals, n, m, dtype=dtype, device=dev)


def monge_cost(sigma, M) -> Array:
    r"""The cost of the Monge map :math:`i \mapsto \sigma(i)`: :math:`\frac1n \sum_i M_{i\,\sigma(i)}`.

    Each of the ``n`` source points carries mass :math:`1/n`, so that
    ``monge_cost(sigma, M) == transport_cost(assignment_plan(arange(n), sigma,
    n, m), M)``; for a permutation this is the cost of the assignment per
    point (the linear-assignment total divided by ``n``).

    Parameters
    ----------
    sigma : integer array, shape (..., n)
        Target index of each source point, ``0 <= sigma < m``; leading axes
        are a batch of maps.
    M : array, shape (n, m)
        Finite cost.

    Returns
    -------
    array, shape (...)
        0-d for one map; namespace of ``M``.

    Examples
    --------
    >>> import numpy as np
    >>> M = np.array([[4.0, 1.0], [2.0, 8.0]])
    >>> monge_cost(np.array([1, 0]), M)
    array(1.5)
    """
    xp = namespace(sigma, M)
    M = check_cost(M, xp, name="M", nonneg=False)
    n, m = M.shape
    sigma = check_index(sigma, "sigma", xp, m, "M.shape[1]")
    if sigma.shape[-1] != n:
        raise ValueError(
            f"sigma has {sigma.shape[-1]} entries but M has {n} rows; sigma needs one target per "
            f"source point, shape (..., {n})"
        )
    batch = tuple(sigma.shape[:-1])
    # flat indices i * m + sigma_i (int64; JAX without x64 has only int32)
    idt = sigma.dtype if is_jax_namespace(xp) else xp.int64
    base = xp.arange(n, dtype=idt, device=device(M)) * m
    lin = xp.reshape(xp.astype(sigma, idt) + base, (-1,))
    vals = xp.reshape(xp.take(xp.reshape(M, (-1,)), lin), batch + (n,))
    return array0(xp.mean(vals, axis=-1), xp)


def barycentric_map(P, y, *, empty_rows: str = "zero") -> Array:
    r"""The Monge map estimated from a plan: :math:`T(x_i) = \sum_j P_{ij} y_j / \sum_j P_{ij}`.

    The conditional mean of the target points given the source point (the
    barycentric projection), as in domain adaptation with OT. For the plan of
    a map :math:`\sigma` (:func:`assignment_plan`) it returns
    ``y[sigma]`` exactly.

    Parameters
    ----------
    P : array, shape (..., n, m)
        Finite, non-negative plan(s).
    y : array, shape (m,) or (m, d)
        Target points, shared by the batch.
    empty_rows : {"zero", "raise"}
        Source bins that send no mass (row sum exactly 0, e.g. zero-mass bins
        in an exact plan) have no image: ``"zero"`` (default) maps them to 0
        (as POT's ``ot.da`` does), ``"raise"`` raises ``ValueError`` (on
        concrete arrays; under ``jax.jit`` they map to 0). Never NaN.

    Returns
    -------
    T : array, shape (..., n) or (..., n, d)
        Matching ``y``'s shape.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.25, 0.25], [0.0, 0.5]]); y = np.array([0.0, 4.0])
    >>> barycentric_map(P, y)
    array([2., 4.])
    """
    empty_rows = check_choice("empty_rows", empty_rows, ("zero", "raise"))
    xp = namespace(P, y)
    P = as_float(P, xp, name="P")
    y = as_float(y, xp, name="y")
    dtype = float_dtype(xp, P, y)
    P = _check_plan(P, xp, dtype=dtype)
    if y.dtype != dtype:
        y = xp.astype(y, dtype)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must have shape (m,) or (m, d), got {tuple(y.shape)}")
    m = P.shape[-1]
    if y.shape[0] != m:
        raise ValueError(
            f"y has {y.shape[0]} points but P has {m} columns; y must have shape (m,) or (m, d) "
            "with m = P.shape[-1]"
        )
    check_values(y, "y", xp, nonneg=False, what="values")
    rs = xp.sum(P, axis=-1)
    empty = rs == 0
    if empty_rows == "raise" and not is_lazy(rs) and bool(xp.any(empty)):
        i = int(xp.argmax(xp.reshape(xp.astype(empty, xp.int32), (-1,))))
        raise ValueError(
            f"P has rows with zero mass (first at flat index {i}); their image is undefined. "
            "Drop those source bins or pass empty_rows='zero'"
        )
    num = xp.matmul(P, y)
    den = xp.where(empty, xp.ones_like(rs), rs)
    if y.ndim == 2:
        den = den[..., None]
    return num / den
