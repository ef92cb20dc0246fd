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

import numpy as np

from otcore._adapters import (
    REDUCTIONS,
    VALUES,
    check_bins,
    check_cost_shape,
    check_masses,
    check_pair_shapes,
    check_samples,
    not_floating,
    reduce,
    renamed_errors,
)
from otcore._validate import check_choice, check_int, check_scalar

__all__ = [
    "sinkhorn_loss",
    "emd_loss",
    "wasserstein_1d_loss",
    "cdf_emd_loss",
    "tree_emd_loss",
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


def _check_pair(pred, target, *, square: bool = True):
    """Type, dtype, shape and (eager only) value checks on pred/target; target cast to pred's dtype."""
    pred = _check_array(pred, "pred")
    target = _check_array(target, "target")
    check_pair_shapes(pred, target, square=square)
    if target.dtype != pred.dtype:
        target = target.astype(pred.dtype)
    check_masses(pred, "pred")
    check_masses(target, "target")
    return pred, target


def _as_cost(M, pred, target):
    """M as an array of pred's dtype, of shape (pred bins, target bins)."""
    try:
        M = jnp.asarray(M, dtype=pred.dtype)
    except Exception as exc:
        raise TypeError(f"M must be a 2-D cost matrix (array), got {type(M).__name__}") from exc
    check_cost_shape(M, pred, target)
    return M


def _center(x):
    return x - jnp.mean(x, axis=-1, keepdims=True)


def _zeros(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


# --------------------------------------------------------------------------- Sinkhorn
def _sinkhorn_run(pred, target, M, reg, n_iter, tol, method="auto"):
    from otcore._sinkhorn import sinkhorn

    with renamed_errors("sinkhorn_loss"):
        return sinkhorn(pred, target, M, reg, n_iter=n_iter, tol=tol, method=method)


def _static_method(M, reg) -> str:
    """The core's ``method="auto"`` choice, made here while ``M`` is still concrete.

    Inside ``jit`` the core cannot read the cost and must take the log method;
    a concrete ``M`` (a constant closed over, or any call outside ``jit``)
    lets the scaling method run when it cannot overflow (same rule as
    ``"auto"``), which under ``jit`` is about 2x faster per step.
    """
    if isinstance(M, jax.core.Tracer):
        return "auto"
    from otcore._sinkhorn import _choose_method

    Mh = np.asarray(M)
    if Mh.size == 0 or not np.all(np.isfinite(Mh)) or Mh.dtype not in (np.float32, np.float64):
        return "auto"
    return _choose_method("auto", float(Mh.max() - Mh.min()), reg, Mh.dtype.name)


def _sinkhorn_value(res, value):
    return res.cost if value == "sinkhorn" else res.reg_cost


def _make_sinkhorn(reg, n_iter, tol, value, method="auto"):
    @jax.custom_vjp
    def fn(pred, target, M):
        return _sinkhorn_value(_sinkhorn_run(pred, target, M, reg, n_iter, tol, method), value)

    def fwd(pred, target, M):
        res = _sinkhorn_run(pred, target, M, reg, n_iter, tol, method)
        return _sinkhorn_value(res, value), (res.grad, _center(res.g), M)

    def bwd(resid, gout):
        ga, gb, M = resid
        gout = jnp.expand_dims(gout, -1)
        return gout * ga, gout * gb, jnp.zeros_like(M)

    fn.defvjp(fwd, bwd)
    return fn


def sinkhorn_loss(pred, target, M, reg, *, n_iter=50, tol=None, value="sinkhorn", reduction="mean"):
    r"""Entropic Wasserstein loss between batches of histograms (Sinkhorn), JAX.

    Same contract as :func:`otcore.torch.sinkhorn_loss`: fixed ``n_iter``
    Sinkhorn iterations (``tol=None``, the only mode usable under
    ``jax.jit``), Frogner's gradient :math:`\varepsilon(\log u -
    \overline{\log u})` for ``pred`` and the centred potential
    :math:`g - \bar g` for ``target``. ``value="regularized"`` returns
    :math:`\mathrm{OT}_\varepsilon` (whose exact gradient this is, at
    convergence); ``"sinkhorn"`` (default) the Sinkhorn distance
    :math:`\langle P, M\rangle`, for which the gradient is Frogner's
    surrogate.

    ``reg`` and ``n_iter`` must be Python numbers (static under ``jit``).
    Works under ``jax.jit`` and ``jax.vmap``.

    Parameters
    ----------
    pred, target : jax.Array, shape (N, n) and (N, m) (or (n,), (m,))
        Floating histograms; ``target`` is cast to ``pred``'s dtype.
    M : array_like, shape (n, m)
        Ground cost (cast to ``pred``'s dtype; receives a zero gradient).
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`.
    n_iter, tol, value, reduction
        As in :func:`otcore.torch.sinkhorn_loss`.

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
    check_choice("value", value, VALUES)
    check_choice("reduction", reduction, REDUCTIONS)
    reg = check_scalar("reg", reg, positive=True)
    n_iter = check_int("n_iter", n_iter, minimum=1)
    tol = check_scalar("tol", tol, positive=True, allow_none=True)
    pred, target = _check_pair(pred, target, square=False)
    M = _as_cost(M, pred, target)
    method = _static_method(M, reg)
    loss = _make_sinkhorn(reg, n_iter, tol, value, method)(pred, target, M)
    return reduce(loss, reduction)


# --------------------------------------------------------------------------- exact EMD
def _emd_host(pred, target, M):
    """Host side of the exact loss: numpy in, (cost, f - mean f, g - mean g) out."""
    from otcore._exact import emd

    pred, target, M = np.asarray(pred), np.asarray(target), np.asarray(M)
    with renamed_errors("emd_loss"):
        res = emd(pred, target, M)
    cost = np.asarray(res.cost, dtype=pred.dtype)
    f = np.asarray(res.f, dtype=pred.dtype)
    g = np.asarray(res.g, dtype=pred.dtype)
    return (
        cost,
        f - f.mean(axis=-1, keepdims=True),
        g - g.mean(axis=-1, keepdims=True),
    )


def _emd_call(pred, target, M):
    batch = jnp.broadcast_shapes(pred.shape[:-1], target.shape[:-1])
    shapes = (
        jax.ShapeDtypeStruct(batch, pred.dtype),
        jax.ShapeDtypeStruct(batch + pred.shape[-1:], pred.dtype),
        jax.ShapeDtypeStruct(batch + target.shape[-1:], pred.dtype),
    )
    return jax.pure_callback(_emd_host, shapes, pred, target, M, vmap_method="sequential")


@jax.custom_vjp
def _emd(pred, target, M):
    return _emd_call(pred, target, M)[0]


def _emd_fwd(pred, target, M):
    cost, f, g = _emd_call(pred, target, M)
    return cost, (f, g, M)


def _emd_bwd(resid, gout):
    f, g, M = resid
    gout = jnp.expand_dims(gout, -1)
    return gout * f, gout * g, jnp.zeros_like(M)


_emd.defvjp(_emd_fwd, _emd_bwd)


def emd_loss(pred, target, M, *, reduction="mean"):
    r"""Exact earth mover's distance loss, JAX (LP on the host via ``jax.pure_callback``).

    Gradients: the centred dual potentials :math:`f - \bar f` (``pred``) and
    :math:`g - \bar g` (``target``). Usable under ``jax.jit``; under
    ``jax.vmap`` the host solver runs once per mapped element.

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
    pred, target = _check_pair(pred, target, square=False)
    M = _as_cost(M, pred, target)
    return reduce(_emd(pred, target, M), reduction)


# --------------------------------------------------------------------------- closed forms
def _make_grad_loss(value_fn, grad_fn, where):
    """custom_vjp loss(pred, target, aux) with closed-form grads; aux gets zero cotangents."""

    @jax.custom_vjp
    def fn(pred, target, aux):
        with renamed_errors(where):
            return value_fn(pred, target, aux)

    def fwd(pred, target, aux):
        with renamed_errors(where):
            loss = value_fn(pred, target, aux)
            ga = grad_fn(pred, target, aux)
            gb = grad_fn(target, pred, aux)
        return loss, (ga, gb, aux)

    def bwd(resid, gout):
        ga, gb, aux = resid
        gout = jnp.expand_dims(gout, -1)
        return gout * ga, gout * gb, _zeros(aux)

    fn.defvjp(fwd, bwd)
    return fn


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
    from otcore._onedim import cdf_emd, cdf_emd_grad

    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target = _check_pair(pred, target)
    # an array of gaps is the custom_vjp's third input (zero cotangent); None or a number stays static
    aux = None if spacing is None or isinstance(spacing, (int, float)) else jnp.asarray(spacing, pred.dtype)

    def value_fn(a, b, aux):
        return cdf_emd(a, b, rho=rho, spacing=spacing if aux is None else aux)

    def grad_fn(a, b, aux):
        return cdf_emd_grad(a, b, rho=rho, spacing=spacing if aux is None else aux)

    loss = _make_grad_loss(value_fn, grad_fn, "cdf_emd_loss")(pred, target, aux)
    return reduce(loss, reduction)


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
    from otcore._tree import tree_emd, tree_emd_grad

    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target = _check_pair(pred, target)

    def value_fn(a, b, aux):
        return tree_emd(a, b, parent, weight, rho=rho)

    def grad_fn(a, b, aux):
        return tree_emd_grad(a, b, parent, weight, rho=rho)

    loss = _make_grad_loss(value_fn, grad_fn, "tree_emd_loss")(pred, target, None)
    return reduce(loss, reduction)


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
    u_values, v_values, u_weights, v_weights = check_samples(
        u_values, v_values, u_weights, v_weights, _check_array
    )
    with renamed_errors("wasserstein_1d_loss", "u/v as named"):
        loss = wasserstein_1d(u_values, v_values, u_weights, v_weights, p=p)
    return reduce(loss, reduction)
