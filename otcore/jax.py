r"""JAX losses on top of the otcore solvers (``jax.custom_vjp``).

The same losses as :mod:`otcore.torch`, for ``jax.Array`` histograms
``pred``/``target`` of shape ``(N, K)`` (last axis = bins):

- :func:`sinkhorn_loss` -- fixed-iteration Sinkhorn; ``jit``/``vmap``
  compatible; backward = Frogner's closed-form gradient.
- :func:`emd_loss` -- exact LP on the host through ``jax.pure_callback``
  (works under ``jit``; ``vmap`` runs it sequentially); backward = centred
  dual potentials.
- :func:`cdf_emd_loss` (``rho=1`` EMD, ``rho=2`` squared EMD) and
  :func:`tree_emd_loss` -- closed forms, ``jit``/``vmap`` compatible.
- :func:`wasserstein_1d_loss` -- differentiated by JAX through the sorted
  sample closed form.

Input checks: shapes and dtypes are checked always (they are static);
**value checks (NaN, negative masses, equal mass) run only eagerly** -- under
``jax.jit`` no value is read (the arguments are tracers, and closed-over
constants are staged like them, see :func:`otcore._array.is_lazy`), so check
your data outside the jitted function if in doubt. ``reg``, ``n_iter``, ``rho``
and tree structures are static Python values (hashable, not traced).

Importing :mod:`otcore` never imports JAX; this module does. float64 needs
``jax.config.update("jax_enable_x64", True)`` (or ``with
jax.enable_x64(True):``), as everywhere in JAX.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> from otcore.jax import sinkhorn_loss
>>> M = jnp.array([[0.0, 1.0], [1.0, 0.0]])
>>> target = jnp.array([[1.0, 0.0], [0.0, 1.0]])
>>> loss = lambda z: sinkhorn_loss(jax.nn.softmax(z), target, M, 0.1)
>>> jax.jit(jax.grad(loss))(jnp.zeros((2, 2))).shape
(2, 2)
"""

from __future__ import annotations

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised without jax only
    raise ImportError("otcore.jax needs JAX; install it with `pip install 'otcore[jax]'`") from exc

from functools import partial

import numpy as np

from otcore._adapters import (
    POINTS,
    REDUCTIONS,
    prepare_points,
    SPECS,
    check_bins,
    check_devices,
    compute_dtype,
    divergence_static,
    sinkhorn_options,
    match_half_masses,
    check_cost_shape,
    check_masses,
    check_pair_shapes,
    check_samples,
    not_floating,
    reduce,
    renamed_errors,
)
from otcore._losses import sinkhorn_method
from otcore._validate import check_choice, check_scalar

__all__ = [
    "sinkhorn_loss",
    "emd_loss",
    "wasserstein_1d_loss",
    "cdf_emd_loss",
    "tree_emd_loss",
    "sinkhorn_divergence_loss",
]


# --------------------------------------------------------------------------- checks
def _check_array(x, name: str):
    """``x`` as a floating ``jax.Array`` (numpy arrays and lists converted) with a non-empty bins axis."""
    if not isinstance(x, jax.Array):
        if isinstance(x, (np.ndarray, list, tuple)):
            x = jnp.asarray(x)
        else:
            raise TypeError(f"{name} must be a jax.Array (or numpy array), got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise not_floating(name, x.dtype, one_hot="jax.nn.one_hot(labels, K)", cast=f"{name}.astype(jnp.float32)")
    check_bins(x, name)
    return x


def _device_of(x):
    """The device of a concrete ``jax.Array`` (None for tracers and non-JAX input)."""
    if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
        return None
    devs = x.devices()
    return next(iter(devs)) if len(devs) == 1 else frozenset(devs)


_MOVE = "e.g. jax.device_put({name}, {first}.device)"


def _check_pair(pred, target, *, square: bool = True, match_masses: bool = True):
    """Type, dtype, shape and device checks on pred/target; target cast to pred's dtype.

    float16/bfloat16 are upcast to float32 (``target``'s masses matched to
    ``pred``'s at half precision unless ``match_masses`` is False: unbalanced
    losses); the caller casts the loss back to ``out_dtype``. Returns
    ``(pred, target, out_dtype)``.
    """
    check_devices(_device_of, _MOVE, pred=pred, target=target)
    pred = _check_array(pred, "pred")
    target = _check_array(target, "target")
    check_pair_shapes(pred, target, square=square)
    check_masses(pred, "pred")  # eager only (inside the custom_vjp even eager values are traced)
    check_masses(target, "target")
    out_dtype = pred.dtype
    if compute_dtype(pred.dtype) is not None or compute_dtype(target.dtype) is not None:
        pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
        if match_masses:
            target = match_half_masses(pred, target, jnp)
    elif target.dtype != pred.dtype:
        target = target.astype(pred.dtype)
    return pred, target, out_dtype


def _as_cost(M, pred, target):
    """M as an array of pred's dtype, of shape (pred bins, target bins); a jax.Array elsewhere raises."""
    if isinstance(M, jax.Array):
        check_devices(_device_of, _MOVE, pred=pred, M=M)
    try:
        M = jnp.asarray(M, dtype=pred.dtype)
    except Exception as exc:
        raise TypeError(f"M must be a 2-D cost matrix (array), got {type(M).__name__}") from exc
    check_cost_shape(M, pred, target)
    return M


# --------------------------------------------------------------------------- the one custom_vjp
def _perturbed(x) -> bool:
    return bool(getattr(x, "perturbed", False))


def _value(x):
    return getattr(x, "value", x)


def _host_call(spec, static, a, b, third, need):
    """``spec.call`` on the host through ``jax.pure_callback`` (the exact LP): works under jit; vmap sequential."""
    batch = a.shape[:-1]
    shapes = [jax.ShapeDtypeStruct(batch, a.dtype)]
    tails = (a.shape[-1:], b.shape[-1:], () if third is None else third.shape)
    shapes += [jax.ShapeDtypeStruct(batch + t, a.dtype) for t, w in zip(tails, need) if w]

    def host(a, b, third):
        third = None if third is None else np.asarray(third)
        value, grads = spec.call(np.asarray(a), np.asarray(b), third, need, static)
        return [np.asarray(value, dtype=a.dtype)] + [np.asarray(g, dtype=a.dtype) for g in grads if g is not None]

    out = jax.pure_callback(host, shapes, a, b, third, vmap_method="sequential")
    it = iter(out[1:])
    return out[0], tuple(next(it) if w else None for w in need)


def _run(spec, static, a, b, third, need):
    if spec.host:
        return _host_call(spec, static, a, b, third, need)
    return spec.call(a, b, third, need, static)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _loss(spec, static, pred, target, third):
    """Any loss of ``otcore._adapters.SPECS``: per-sample values (batch shape)."""
    return _run(spec, static, pred, target, third, (False, False, False))[0]


def _loss_fwd(spec, static, pred, target, third):
    # symbolic zeros: the core computes only the gradients of the perturbed inputs
    need = (_perturbed(pred), _perturbed(target), _perturbed(third))
    value, grads = _run(spec, static, _value(pred), _value(target), _value(third), need)
    return value, grads


def _loss_bwd(spec, static, grads, gout):
    d_a, d_b, d_t = grads
    g = jnp.expand_dims(gout, -1)
    return (
        None if d_a is None else g * d_a,
        None if d_b is None else g * d_b,
        None if d_t is None else jnp.tensordot(gout, d_t, axes=gout.ndim),
    )


_loss.defvjp(_loss_fwd, _loss_bwd, symbolic_zeros=True)


def _apply(name, pred, target, third, static, reduction, out_dtype):
    """Run ``SPECS[name]`` through the one custom_vjp, reduce, cast back to ``out_dtype`` (halves)."""
    loss = reduce(_loss(SPECS[name], _Static(static), pred, target, third), reduction)
    return loss if loss.dtype == out_dtype else loss.astype(out_dtype)


class _Static(dict):
    """The static keyword arguments of a spec, hashable by identity (a nondiff argument of the custom_vjp)."""

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


# --------------------------------------------------------------------------- Sinkhorn
def sinkhorn_loss(
    pred, target, M, reg, *, n_iter=50, tol=None, value="sinkhorn", reduction="mean", grad="frogner", reg_m=None
):
    r"""Entropic Wasserstein loss between batches of histograms (Sinkhorn), JAX.

    Same contract as :func:`otcore.torch.sinkhorn_loss`: fixed ``n_iter``
    Sinkhorn iterations (``tol=None``, the only mode usable under
    ``jax.jit``). ``value="sinkhorn"`` (default) returns the Sinkhorn
    distance :math:`\langle P, M\rangle`; ``pred`` and ``target`` get Frogner
    et al.'s (2015) gradient (that of :math:`\mathrm{OT}_\varepsilon`, a
    surrogate) with ``grad="frogner"`` (default), or the exact gradient of
    the fixed point with ``grad="implicit"``; ``M`` always gets the exact
    one. ``value="regularized"`` returns :math:`\mathrm{OT}_\varepsilon`,
    whose gradients (:math:`f - \bar f`, :math:`g - \bar g`, the plan) are
    exact at convergence. Only the gradients of the inputs being
    differentiated are computed (``custom_vjp`` with symbolic zeros).

    ``reg`` and ``n_iter`` must be Python numbers (static under ``jit``).
    Works under ``jax.jit`` and ``jax.vmap``.

    Parameters
    ----------
    pred, target : jax.Array, shape (N, n) and (N, m) (or (n,), (m,))
        Floating histograms; ``target`` is cast to ``pred``'s dtype;
        float16/bfloat16 are computed in float32 and the loss cast back.
    M : array_like, shape (n, m)
        Ground cost (cast to ``pred``'s dtype; a ``jax.Array`` on another
        device raises). Differentiable, e.g. ``otcore.cost_matrix(x, y)``.
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`.
    n_iter, tol, value, reduction, grad, reg_m
        As in :func:`otcore.torch.sinkhorn_loss` (``reg_m``: unbalanced
        transport, with ``value="regularized"``).

    Returns
    -------
    jax.Array
        0-d (``"mean"``/``"sum"``) or of the batch shape ``(N,)``
        (``"none"``), of ``pred``'s dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> M = 1.0 - jnp.eye(3)
    >>> p = jnp.array([[0.2, 0.3, 0.5]])
    >>> t = jnp.array([[0.0, 0.0, 1.0]])
    >>> print(f"{float(sinkhorn_loss(p, t, M, 0.05)):.3f}")
    0.500
    """
    reg, n_iter, tol = sinkhorn_options(reg, n_iter, tol, value, reduction, grad, reg_m)
    # unbalanced: the masses are free (never rescaled to each other)
    pred, target, out_dtype = _check_pair(pred, target, square=False, match_masses=reg_m is None)
    M = _as_cost(M, pred, target)
    # the core's "auto" choice made while M is still concrete (inside the custom_vjp it is traced)
    method = sinkhorn_method(M, reg)
    if reg_m is not None:
        static = {"reg": reg, "reg_m": reg_m, "n_iter": n_iter, "tol": tol, "method": method}
        return _apply("sinkhorn_unbalanced_loss", pred, target, M, static, reduction, out_dtype)
    static = {"reg": reg, "n_iter": n_iter, "tol": tol, "value": value, "grad": grad, "method": method}
    return _apply("sinkhorn_loss", pred, target, M, static, reduction, out_dtype)


# --------------------------------------------------------------------------- exact EMD
def emd_loss(pred, target, M, *, reduction="mean"):
    r"""Exact earth mover's distance loss, JAX (LP on the host via ``jax.pure_callback``).

    Gradients: the centred dual potentials :math:`f - \bar f` (``pred``),
    :math:`g - \bar g` (``target``) and the optimal plan (``M``), as POT's
    ``ot.emd2``. Usable under ``jax.jit``; under ``jax.vmap`` the host
    solver runs once per mapped element.

    Parameters
    ----------
    pred, target : jax.Array, shape (N, n) and (N, m)
    M : array_like, shape (n, m)
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    jax.Array, 0-d or (``reduction="none"``) shape ``(N,)``, of ``pred``'s dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> M = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    >>> p = jnp.array([[0.25, 0.75]])
    >>> t = jnp.array([[1.0, 0.0]])
    >>> print(f"{float(emd_loss(p, t, M)):.2f}")
    0.75
    """
    check_choice("reduction", reduction, REDUCTIONS)
    pred, target, out_dtype = _check_pair(pred, target, square=False)
    M = _as_cost(M, pred, target)
    return _apply("emd_loss", pred, target, M, {}, reduction, out_dtype)


# --------------------------------------------------------------------------- closed forms
def cdf_emd_loss(pred, target, *, rho=1, spacing=None, reduction="mean"):
    r"""EMD on a line through CDFs (``rho=2``: the squared EMD), JAX.

    :func:`otcore.cdf_emd` forward and
    :func:`otcore.cdf_emd_grad` backward; ``jit``/``vmap``
    compatible. ``spacing`` may be None, a number or an array of bin widths
    (it receives no gradient).

    Parameters
    ----------
    pred, target : jax.Array, shape (N, n)
        Floating histograms of equal total mass per row.
    rho : float, default 1
    spacing : float or array of shape (n - 1,), optional
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    jax.Array, 0-d or (``reduction="none"``) shape ``(N,)``, of ``pred``'s dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = jnp.array([[0.5, 0.5, 0.0]])
    >>> t = jnp.array([[0.0, 0.0, 1.0]])
    >>> print(f"{float(cdf_emd_loss(p, t)):.2f} {float(cdf_emd_loss(p, t, rho=2)):.2f}")
    1.50 1.25
    """
    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target, out_dtype = _check_pair(pred, target)
    # an array of gaps is the custom_vjp's third input (differentiating it raises); None or a number stays static
    if spacing is None or isinstance(spacing, (int, float)):
        third, static = None, {"rho": rho, "spacing": spacing}
    else:
        third, static = jnp.asarray(spacing, pred.dtype), {"rho": rho}
    return _apply("cdf_emd_loss", pred, target, third, static, reduction, out_dtype)


def tree_emd_loss(pred, target, parent, weight=None, *, rho=1, reduction="mean"):
    r"""Tree earth mover's distance loss, JAX.

    :func:`otcore.tree_emd` forward and :func:`otcore.tree_emd_grad`
    backward; ``jit``/``vmap`` compatible. ``parent`` (and ``weight``) are
    static: compile the tree once with ``otcore.compile_tree(parent,
    weight)`` and pass it as ``parent``.

    Parameters
    ----------
    pred, target : jax.Array, shape (N, n)
        Histograms over the n nodes of the tree.
    parent : array_like of int, shape (n,), or Tree
    weight : array_like, shape (n,), optional
    rho : float, default 1
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    jax.Array, 0-d or (``reduction="none"``) shape ``(N,)``, of ``pred``'s dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = jnp.array([[0.0, 1.0, 0.0]])
    >>> t = jnp.array([[0.0, 0.0, 1.0]])
    >>> print(f"{float(tree_emd_loss(p, t, [-1, 0, 0])):.2f}")
    2.00
    """
    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target, out_dtype = _check_pair(pred, target)
    static = {"parent": parent, "weight": weight, "rho": rho}
    return _apply("tree_emd_loss", pred, target, None, static, reduction, out_dtype)


def wasserstein_1d_loss(u_values, v_values, u_weights=None, v_weights=None, *, p=1, reduction="mean"):
    r"""Wasserstein loss between 1D empirical distributions, JAX.

    :func:`otcore.wasserstein_1d` differentiated by JAX itself
    (sorting and the quantile closed form are differentiable; exact away
    from ties and, for ``p=1``, from quantile crossings).

    Parameters
    ----------
    u_values, v_values : jax.Array, shape (N, n), (N, m)
        Floating sample positions.
    u_weights, v_weights : jax.Array of shape (N, n), (N, m), or None
        Sample masses (uniform when None).
    p : float, default 1
        Ground cost :math:`|x-y|^p` (returns :math:`W_p^p`).
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    jax.Array, 0-d or (``reduction="none"``) shape ``(N,)``, of ``u_values``'s dtype.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> u = jnp.array([[0.0, 1.0]])
    >>> v = jnp.array([[0.5, 2.0]])
    >>> print(f"{float(wasserstein_1d_loss(u, v)):.2f}")
    0.75
    """
    from otcore._onedim import wasserstein_1d

    check_choice("reduction", reduction, REDUCTIONS)
    check_devices(_device_of, _MOVE, u_values=u_values, v_values=v_values, u_weights=u_weights, v_weights=v_weights)
    u_values, v_values, u_weights, v_weights = check_samples(
        u_values, v_values, u_weights, v_weights, _check_array
    )
    out_dtype = u_values.dtype
    if compute_dtype(out_dtype) is not None:
        u_values, v_values = u_values.astype(jnp.float32), v_values.astype(jnp.float32)
        u_weights, v_weights = (None if w is None else w.astype(jnp.float32) for w in (u_weights, v_weights))
    with renamed_errors("wasserstein_1d_loss", "u/v as named"):
        loss = wasserstein_1d(u_values, v_values, u_weights, v_weights, p=p)
    loss = reduce(loss, reduction)
    return loss if loss.dtype == out_dtype else loss.astype(out_dtype)



# --------------------------------------------------------------------------- the generic custom_vjp of many inputs
def _host_call_many(spec, static, arrays, need):
    """``spec.call_many`` on the host through ``jax.pure_callback``: works under jit; vmap sequential.

    The first two inputs carry the batch (the value's shape); every
    gradient is returned per batch entry.
    """
    batch = arrays[0].shape[:-1]
    dtype = arrays[0].dtype
    shapes = [jax.ShapeDtypeStruct(batch, dtype)]
    shapes += [
        jax.ShapeDtypeStruct(batch + (x.shape[-1:] if i < 2 else x.shape), dtype)
        for i, (x, w) in enumerate(zip(arrays, need)) if w
    ]

    def host(*xs):
        value, grads = spec.call_many(tuple(np.asarray(x) for x in xs), need, static, POINTS)
        return [np.asarray(value, dtype=dtype)] + [np.asarray(g, dtype=dtype) for g in grads if g is not None]

    out = jax.pure_callback(host, shapes, *arrays, vmap_method="sequential")
    it = iter(out[1:])
    return out[0], tuple(next(it) if w else None for w in need)


def _run_many(spec, static, arrays, need):
    if spec.host:
        return _host_call_many(spec, static, arrays, need)
    return spec.call_many(arrays, need, static, POINTS)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _loss_many(spec, static, *arrays):
    """Any spec of ``otcore._adapters.SPECS`` with ``inputs`` arrays: per-sample values (batch shape).

    The same contract as :func:`_loss`: the first two inputs per-sample, the
    others shared by the batch (their gradients contracted with the
    incoming one).
    """
    return _run_many(spec, static, arrays, (False,) * len(arrays))[0]


def _loss_many_fwd(spec, static, *arrays):
    need = tuple(_perturbed(x) for x in arrays)
    return _run_many(spec, static, tuple(_value(x) for x in arrays), need)


def _loss_many_bwd(spec, static, grads, gout):
    g = jnp.expand_dims(gout, -1)
    out = []
    for i, d in enumerate(grads):
        if d is None:
            out.append(None)
        elif i < 2:
            out.append(g * d)
        else:
            out.append(jnp.tensordot(gout, d, axes=gout.ndim))
    return tuple(out)


_loss_many.defvjp(_loss_many_fwd, _loss_many_bwd, symbolic_zeros=True)


def _check_points(a, x, b, y):
    """Types, shapes, devices of a point-cloud loss; uniform weights for None; halves upcast.

    Returns ``(a, x, b, y, out_dtype)``, all of ``x``'s dtype (float32 for
    float16/bfloat16 input).
    """
    check_devices(_device_of, _MOVE, x=x, y=y, a=a, b=b)
    x = _check_array(x, "x")
    y = _check_array(y, "y")
    a = None if a is None else _check_array(a, "a")
    b = None if b is None else _check_array(b, "b")
    return prepare_points(a, x, b, y)


def sinkhorn_divergence_loss(
    a, x, b, y, reg, *, metric="sqeuclidean", scale=1.0, n_iter=1000, tol="auto", reduction="mean"
):
    r"""Sinkhorn divergence between weighted point clouds (Feydy et al. 2019), JAX.

    Same contract as :func:`otcore.torch.sinkhorn_divergence_loss`:
    :math:`S_\varepsilon = \mathrm{OT}_\varepsilon(\alpha, \beta) - \tfrac12
    \mathrm{OT}_\varepsilon(\alpha, \alpha) - \tfrac12
    \mathrm{OT}_\varepsilon(\beta, \beta)` on the lazy cost
    ``otcore.PointCloud(x, y, metric=metric, scale=scale)``, with gradients
    with respect to the weights ``a``, ``b`` and the points ``x``, ``y``
    (:func:`otcore.sinkhorn_divergence_value_and_grad`; only those being
    differentiated are computed). The solves run on the host through
    ``jax.pure_callback`` (the tolerance-driven loop needs concrete
    values), so the loss works under ``jax.jit``; under ``jax.vmap`` the
    host solver runs once per mapped element.

    Parameters
    ----------
    a : jax.Array of shape (n,) or (N, n), or None (uniform)
    x : jax.Array, shape (n, d)
    b : jax.Array of shape (m,) or (N, m), or None (uniform)
    y : jax.Array, shape (m, d)
    reg : float
        :math:`\varepsilon > 0`; GeomLoss's ``blur=s`` for ``p=2`` is
        ``reg=s**2`` with ``scale=0.5``.
    metric, scale, n_iter, tol, reduction
        As in :func:`otcore.torch.sinkhorn_divergence_loss`.

    Returns
    -------
    jax.Array, 0-d or (``reduction="none"``) the weights' batch shape, of ``x``'s dtype.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    >>> y = jnp.array([[0.0, 0.5], [1.0, 0.5]])
    >>> f = lambda x: sinkhorn_divergence_loss(None, x, None, y, 0.01, scale=0.5)
    >>> print(f"{float(f(x)):.3f}")
    0.125
    >>> print(jax.grad(f)(x).round(3))
    [[ 0.   -0.25]
     [ 0.   -0.25]]
    """
    static = divergence_static(reg, metric, scale, n_iter, tol, reduction)
    a, x, b, y, out_dtype = _check_points(a, x, b, y)
    loss = reduce(_loss_many(SPECS["sinkhorn_divergence_loss"], _Static(static), a, b, x, y), reduction)
    return loss if loss.dtype == out_dtype else loss.astype(out_dtype)


