r"""Loss values with the gradients a backward pass needs (the maths of the autodiff adapters).

Every function here takes histograms ``a`` (batch + (n,)), ``b`` (batch +
(m,)), a third input (the cost ``M``, the CDF ``spacing`` or nothing) and a
``need`` triple of booleans (which gradients the caller wants), and returns

``(value, (d_a, d_b, d_third))``

with ``value`` of the batch shape and each gradient of its input's shape
*per batch entry* (``d_M`` is batch + (n, m) for a cost shared by the
batch), or ``None`` when not needed. They are built from the public core
functions (:func:`otcore.sinkhorn`, :func:`otcore.emd`,
:func:`otcore.cdf_emd`, :func:`otcore.tree_emd` and their gradients) and
written against the array API, so :mod:`otcore.torch` and :mod:`otcore.jax`
only move arrays in and out and multiply by the incoming gradient.

Gradients with respect to histograms are centred (they sum to zero over the
bins): a histogram lives on the simplex, where the gradient is defined up to
a constant vector.
"""

from __future__ import annotations

import math

from otcore._array import namespace, to_host
from otcore._validate import check_choice

__all__ = [
    "SINKHORN_GRADS",
    "sinkhorn_loss_grads",
    "sinkhorn_implicit_grads",
    "emd_loss_grads",
    "cdf_emd_loss_grads",
    "tree_emd_loss_grads",
    "sinkhorn_method",
    "sinkhorn_divergence_loss_grads",
    "sinkhorn_unbalanced_loss_grads",
]

SINKHORN_GRADS = ("frogner", "implicit")


def _center(x, xp):
    return x - xp.mean(x, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- Sinkhorn
def sinkhorn_implicit_grads(res, a, b, M):
    r"""Exact gradients of the Sinkhorn distance :math:`\langle P^\star, M\rangle` at the fixed point.

    :math:`P^\star = \exp((f \oplus g - M)/\varepsilon)` solves the entropic
    problem; differentiating its optimality conditions
    :math:`P^\star 1 = a`, :math:`P^{\star\top} 1 = b` (implicit function
    theorem; Luise et al. 2018, Eisenberger et al. 2022) gives, with
    :math:`H = \begin{pmatrix}\mathrm{diag}(P1) & P\\ P^\top & \mathrm{diag}(P^\top 1)\end{pmatrix}`
    and :math:`(z_f, z_g)` the solution of
    :math:`H z = ((P\circ M)1, (P\circ M)^\top 1)`:

    .. math::

        \nabla_a = z_f - \bar z_f,\qquad \nabla_b = z_g - \bar z_g,\qquad
        \nabla_M = P \circ \Bigl(1 + \frac{z_f \oplus z_g - M}{\varepsilon}\Bigr).

    :math:`H` is singular along :math:`(1, -1)`; the right-hand side is
    orthogonal to it, and the solve is made on :math:`H + v v^\top`,
    :math:`v = (1, -1)` on the bins of positive mass. A bin of zero mass
    takes the one-sided limit :math:`z_{g,j} = \sum_i k_{ij}(M_{ij} - z_{f,i})`,
    :math:`k_{\cdot j} = \mathrm{softmax}_i((f_i - M_{ij})/\varepsilon)`
    (and symmetrically for ``a``).

    Parameters
    ----------
    res : SinkhornResult
        A (converged) result for ``a``, ``b``, ``M``.
    a, b : arrays, batch + (n,), batch + (m,)
    M : array (n, m)

    Returns
    -------
    (d_a, d_b, d_M) : arrays, batch + (n,), batch + (m,), batch + (n, m)

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import sinkhorn
    >>> a = np.array([0.5, 0.5]); b = np.array([0.25, 0.75])
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = sinkhorn(a, b, M, 1.0, tol=1e-14, n_iter=10000)
    >>> d_a, d_b, d_M = sinkhorn_implicit_grads(res, a, b, M)
    >>> print(np.round(d_M.sum(), 6) != 0, d_a.shape, d_M.shape)
    True (2,) (2, 2)
    """
    xp = namespace(res.f, M)
    reg = res.reg
    f, g = res.f, res.g
    n, m = f.shape[-1], g.shape[-1]
    dt = f.dtype
    pa = xp.astype(xp.broadcast_to(a, f.shape) > 0, dt)
    pb = xp.astype(xp.broadcast_to(b, g.shape) > 0, dt)
    P = res.plan
    PM = P * M
    ra, rb = xp.sum(P, axis=-1), xp.sum(P, axis=-2)
    w = xp.concat([xp.sum(PM, axis=-1), xp.sum(PM, axis=-2)], axis=-1)
    # H + v v^T (scaled like H); zero-mass bins are decoupled (diagonal 1, z = 0 there)
    mass = xp.sum(ra, axis=-1)[..., None, None]
    v = xp.concat([pa, -pb], axis=-1)
    top = xp.concat([_diag(ra + (1 - pa), xp), P], axis=-1)
    bot = xp.concat([xp.matrix_transpose(P), _diag(rb + (1 - pb), xp)], axis=-1)
    H = xp.concat([top, bot], axis=-2) + (mass / (n + m)) * (v[..., :, None] * v[..., None, :])
    z = xp.linalg.solve(H, w[..., None])[..., 0]
    zf, zg = z[..., :n], z[..., n:]
    # zero-mass bins: the one-sided limit (depends on the positive bins only)
    zg0 = _limit(f, zf, M, pa, reg, xp, axis=-2)
    zf0 = _limit(g, zg, xp.matrix_transpose(M), pb, reg, xp, axis=-2)
    zf = pa * zf + (1 - pa) * zf0
    zg = pb * zg + (1 - pb) * zg0
    d_M = P * (1 + (zf[..., :, None] + zg[..., None, :] - M) / reg)
    return _center(zf, xp), _center(zg, xp), d_M


def _diag(x, xp):
    k = x.shape[-1]
    return x[..., :, None] * xp.eye(k, dtype=x.dtype, device=_device_of(x))


def _device_of(x):
    from otcore._array import device

    return device(x)


def _limit(f, zf, M, pos, reg, xp, axis):
    """``sum_i k_ij (M_ij - zf_i)``, ``k_.j = softmax_i over pos of (f_i - M_ij)/reg``."""
    L = (f[..., :, None] - M) / reg
    L = xp.where(pos[..., :, None] > 0, L, xp.asarray(-math.inf, dtype=L.dtype))
    L = L - xp.max(L, axis=axis, keepdims=True)
    k = xp.exp(L)
    k = k / xp.sum(k, axis=axis, keepdims=True)
    return xp.sum(k * (M - zf[..., :, None]), axis=axis)


def sinkhorn_loss_grads(a, b, M, need=(True, True, True), *, reg, n_iter=50, tol=None,
                        value="sinkhorn", grad="frogner", method="auto"):
    r"""The Sinkhorn loss and its gradients with respect to ``a``, ``b`` and ``M``.

    ``value="regularized"``: :math:`\mathrm{OT}_\varepsilon`, with gradients
    (envelope theorem) :math:`f - \bar f`, :math:`g - \bar g` and the plan
    :math:`P` -- exact at convergence, whatever ``grad``.

    ``value="sinkhorn"``: :math:`\langle P, M\rangle`. With
    ``grad="frogner"`` (default) ``a`` and ``b`` get Frogner et al.'s (2015)
    gradient, that of :math:`\mathrm{OT}_\varepsilon`
    (``SinkhornResult.grad`` and :math:`g - \bar g`): one subtraction, and
    the gradient the published Wasserstein-loss layers train with; ``M``
    gets the exact gradient (:func:`sinkhorn_implicit_grads`), computed only
    when needed. ``grad="implicit"``: every gradient is the exact one of the
    fixed point (a linear solve of size ``n + m`` per pair).

    Returns
    -------
    (value, (d_a, d_b, d_M)) ; a gradient not in ``need`` is None.
    """
    import numpy as np

    from otcore._sinkhorn import _host_solve, sinkhorn

    check_choice("grad", grad, SINKHORN_GRADS)
    if tol is None and not need[2] and (grad == "frogner" or value == "regularized"):
        # small dense numpy batches: the compiled driver's packed results, no record
        run = _host_solve(a, b, M, reg, n_iter, method)
        if run is not None:
            return run.column(0 if value == "sinkhorn" else 1), (
                run.grad() if need[0] else None, _center(run.g(), np) if need[1] else None, None)
    res = sinkhorn(a, b, M, reg, n_iter=n_iter, tol=tol, method=method)
    d_b = _center(res.g, namespace(res.g)) if need[1] else None
    if value == "regularized":
        return res.reg_cost, (res.grad if need[0] else None, d_b, res.plan if need[2] else None)
    exact = need[2] or (grad == "implicit" and (need[0] or need[1]))
    ia, ib, iM = sinkhorn_implicit_grads(res, a, b, M) if exact else (None, None, None)
    if grad == "implicit":
        return res.cost, (ia if need[0] else None, ib if need[1] else None, iM if need[2] else None)
    return res.cost, (res.grad if need[0] else None, d_b, iM if need[2] else None)


def sinkhorn_method(M, reg) -> str:
    """The core's ``method="auto"`` choice for ``M``, made while ``M`` is concrete.

    Inside ``jax.jit`` the core cannot read the cost and takes the log
    method; an adapter that holds a concrete ``M`` (a constant closed over)
    asks here first. Returns ``"auto"`` when ``M`` cannot be read.
    """
    import numpy as np

    from otcore import _sinkhorn

    try:  # a traced value cannot be read: the core decides (log method)
        Mh = to_host(M)
    except Exception:
        return "auto"
    if Mh.size == 0 or not np.all(np.isfinite(Mh)) or Mh.dtype not in (np.float32, np.float64):
        return "auto"
    return _sinkhorn._choose_method("auto", float(Mh.max() - Mh.min()), reg, Mh.dtype.name)


# --------------------------------------------------------------------------- exact
def emd_loss_grads(a, b, M, need=(True, True, True)):
    r"""The earth mover's distance and its gradients.

    :math:`\nabla_a = f - \bar f`, :math:`\nabla_b = g - \bar g` (centred
    dual potentials: a subgradient, the gradient where the dual is unique)
    and :math:`\nabla_M = P^\star`, the optimal plan (the EMD is a minimum
    of functions linear in ``M``: the plan is a subgradient, the gradient
    where the plan is unique).
    """
    from otcore._exact import emd

    res = emd(a, b, M)
    xp = namespace(res.f)
    return res.cost, (
        _center(res.f, xp) if need[0] else None,
        _center(res.g, xp) if need[1] else None,
        res.plan if need[2] else None,
    )


# --------------------------------------------------------------------------- closed forms
def cdf_emd_loss_grads(a, b, gaps=None, need=(True, True, False), *, rho=1, spacing=None):
    r""":func:`otcore.cdf_emd` and its centred gradients (:func:`otcore.cdf_emd_grad`).

    The gaps between bins come as the array ``gaps`` (an input of the
    adapters' autodiff node) or as the static ``spacing``; they get no
    gradient: asking for one raises ``ValueError``.
    """
    from otcore._onedim import cdf_emd, cdf_emd_grad

    if need[2]:
        raise ValueError("spacing receives no gradient; pass it as a constant (detach it)")
    if gaps is not None:
        spacing = gaps
    loss = cdf_emd(a, b, rho=rho, spacing=spacing)
    return loss, (
        cdf_emd_grad(a, b, rho=rho, spacing=spacing) if need[0] else None,
        cdf_emd_grad(b, a, rho=rho, spacing=spacing) if need[1] else None,
        None,
    )


def tree_emd_loss_grads(a, b, _unused=None, need=(True, True, False), *, parent, weight=None, rho=1):
    r""":func:`otcore.tree_emd` and its centred gradients (:func:`otcore.tree_emd_grad`).

    The tree (``parent``, ``weight``) is a static structure: it gets no
    gradient (there is no cost matrix to differentiate).
    """
    from otcore._tree import tree_emd, tree_emd_grad

    if need[2]:
        raise ValueError("the tree (parent, weight) receives no gradient; pass constants")
    loss = tree_emd(a, b, parent, weight, rho=rho)
    return loss, (
        tree_emd_grad(a, b, parent, weight, rho=rho) if need[0] else None,
        tree_emd_grad(b, a, parent, weight, rho=rho) if need[1] else None,
        None,
    )


def sinkhorn_divergence_loss_grads(a, b, x, y, need=(True, True, True, True), *, reg, metric="sqeuclidean",
                                   scale=1.0, n_iter=1000, tol="auto", memory=None):
    r"""The Sinkhorn divergence between weighted point clouds and its gradients (Feydy et al. 2019).

    :math:`S_\varepsilon(a, b)` of :func:`otcore.sinkhorn_divergence` over
    the lazy cost ``PointCloud(x, y, metric=metric, scale=scale)``, with the
    gradients of :func:`otcore.sinkhorn_divergence_value_and_grad` (envelope
    theorem, exact at convergence). The four inputs are the loss's
    differentiable inputs, in the order ``(a, b, x, y)``; the points are
    shared by the batch of weights.

    Parameters
    ----------
    a, b : arrays, batch + (n,), batch + (m,)
        Weights of equal total mass per batch entry.
    x, y : arrays (n, d), (m, d)
        The points.
    need : 4 booleans
        Which of ``(d_a, d_b, d_x, d_y)`` to compute (the position
        gradients cost a few more passes over the costs).

    Returns
    -------
    (value, (d_a, d_b, d_x, d_y)) : ``value`` of the batch shape; ``d_x``
    batch + (n, d) and ``d_y`` batch + (m, d) per batch entry; a gradient not
    in ``need`` is None. ``d_a`` and ``d_b`` are exact along perturbations that
    keep the total mass (the divergence compares measures of equal mass).
    """
    from otcore._divergence import sinkhorn_divergence_value_and_grad
    from otcore._pointcloud import PointCloud

    kw = {} if memory is None else {"memory": memory}
    C = PointCloud(x, y, metric=metric, scale=scale, **kw)
    value, (d_a, d_b, d_x, d_y) = sinkhorn_divergence_value_and_grad(
        a, b, C, reg, positions=bool(need[2] or need[3]), n_iter=n_iter, tol=tol
    )
    return value, tuple(g if w else None for g, w in zip((d_a, d_b, d_x, d_y), need))


def sinkhorn_unbalanced_loss_grads(a, b, M, need=(True, True, True), *, reg, reg_m, n_iter=50, tol=None,
                                   method="auto"):
    r"""Unbalanced entropic OT (KL-relaxed marginals, Frogner et al. 2015) and its gradients.

    The value is the minimised objective of :func:`otcore.sinkhorn` with
    ``reg_m`` (``SinkhornResult.reg_cost``),

    .. math::

        \mathrm{UOT}(a, b) = \min_P \langle P, M\rangle + \varepsilon\,\mathrm{KL}(P | a\otimes b)
            + \rho_a \mathrm{KL}(P1 | a) + \rho_b \mathrm{KL}(P^\top 1 | b),

    with the gradients of the envelope theorem (exact at convergence; the
    masses are free, so nothing is centred):

    .. math::

        \nabla_a = \rho_a(1 - e^{-\hat f/\rho_a}) + \varepsilon(\textstyle\sum_j b_j - e^{-\hat f/\rho_a}),
        \qquad
        \nabla_b = \rho_b(1 - e^{-\hat g/\rho_b}) + \varepsilon(\textstyle\sum_i a_i - e^{-\hat g/\rho_b}),
        \qquad \nabla_M = P,

    :math:`\hat f = f - \varepsilon \log a`, :math:`\hat g = g - \varepsilon
    \log b` (``SinkhornResult.grad`` is :math:`\nabla_a`; for an exact
    marginal, :math:`\rho = \infty`, the limit :math:`\hat g + \varepsilon(\sum a - 1)`).

    Returns
    -------
    (value, (d_a, d_b, d_M)) ; a gradient not in ``need`` is None.
    """
    from otcore._sinkhorn import sinkhorn

    res = sinkhorn(a, b, M, reg, n_iter=n_iter, tol=tol, method=method, reg_m=reg_m)
    d_b = None
    if need[1]:
        xp = namespace(res.g)
        rho_b = reg_m[1] if isinstance(reg_m, (tuple, list)) else reg_m
        bw = xp.broadcast_to(xp.astype(xp.asarray(b), res.g.dtype), res.g.shape)
        aw = xp.broadcast_to(xp.astype(xp.asarray(a), res.f.dtype), res.f.shape)
        pos = bw > 0
        gh = xp.where(pos, res.g - reg * xp.log(xp.where(pos, bw, xp.ones((), dtype=bw.dtype))), res.g)
        ma = xp.sum(aw, axis=-1, keepdims=True)
        if rho_b == math.inf:
            d_b = gh + reg * (ma - 1.0)
        else:
            e = xp.exp(-gh / rho_b)
            d_b = rho_b * (1.0 - e) + reg * (ma - e)
    return res.reg_cost, (res.grad if need[0] else None, d_b, res.plan if need[2] else None)
