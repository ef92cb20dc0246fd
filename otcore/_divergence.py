r"""The Sinkhorn divergence (Feydy et al. 2019): debiased entropic OT, and its gradients.

.. math::

    S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
        - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b),
    \qquad
    \mathrm{OT}_\varepsilon(a, b) = \min_{P \in U(a, b)} \langle P, C\rangle
        + \varepsilon\, \mathrm{KL}(P \,|\, a \otimes b),

with the entropy taken relative to :math:`a \otimes b` (GeomLoss's and
OTT-JAX's convention). :math:`S_\varepsilon` is symmetric, zero when
``a = b`` on the same points, and positive for positive-definite kernels
:math:`e^{-C/\varepsilon}` (e.g. :math:`C = \|x - y\|^2` and
:math:`\|x - y\|`). Its value is written with the potentials
:math:`\hat f = f - \varepsilon \log a`, :math:`\hat g = g - \varepsilon
\log b` of the three problems,
:math:`\mathrm{OT}_\varepsilon(a, b) = \langle a, \hat f\rangle +
\langle b, \hat g\rangle`, and so are its gradients (envelope theorem,
Feydy et al. 2019):

.. math::

    \nabla_a S = \hat f_{ab} - \tfrac12(\hat f_{aa} + \hat g_{aa}), \qquad
    \nabla_{x_i} S = \sum_j P^{ab}_{ij}\,\partial_1 C(x_i, y_j)
        - \tfrac12 \nabla_{x_i} \mathrm{OT}_\varepsilon(a, a),

and likewise for ``b`` and ``y``. Every Sinkhorn solve is otcore's engine
(:func:`otcore.sinkhorn`); this module only combines its results. The
torch and JAX losses call :func:`sinkhorn_divergence_value_and_grad`.

Public names: :func:`sinkhorn_divergence`,
:func:`sinkhorn_divergence_value_and_grad`.
"""

from __future__ import annotations

from otcore._array import Array, namespace
from otcore._pointcloud import PointCloud

__all__ = ["sinkhorn_divergence", "sinkhorn_divergence_value_and_grad"]


def _costs(M):
    """``(M_ab, M_aa, M_bb)`` from a PointCloud or a tuple of three costs."""
    if isinstance(M, PointCloud):
        if M.symmetric:
            return M, M, M
        kw = dict(metric=M.metric, scale=M.scale, memory=M.memory)
        return M, PointCloud(M.x, **kw), PointCloud(M.y, **kw)
    if isinstance(M, (tuple, list)) and len(M) == 3:
        return tuple(M)
    raise TypeError(
        "M must be a PointCloud or a tuple (M_ab, M_aa, M_bb) of the three cost matrices "
        f"(cross, source-source, target-target), got {type(M).__name__}"
    )


def _relative(xp, f, w, reg):
    pos = w > 0
    one = xp.ones((), dtype=f.dtype)
    return xp.where(pos, f - reg * xp.log(xp.where(pos, w, one)), f)


# Symmetric averaged iterations that warm-start each self-term OT(a, a).
_SYMMETRIC_ITERS = 10


def _solve(a, b, M, reg, kwargs):
    from otcore._sinkhorn import sinkhorn

    return sinkhorn(a, b, M, reg, **kwargs)


def _solve_self(a, M, reg, kwargs):
    r"""``OT(a, a)``, warm-started by the symmetric iteration :math:`f \leftarrow (f + T f)/2`.

    On a symmetric problem the alternating Sinkhorn updates oscillate and
    converge slowly (10,000 iterations are not enough for a Gaussian cloud at
    ``reg = 0.1``); the averaged update on the single potential converges in a
    few steps (Feydy et al. 2019). :math:`T f` is the engine's first
    half-step from ``init=(f, None)`` (its ``g``), so the engine stays the one
    place that iterates and builds the result; it then finishes from
    ``init=(f, f)`` to the caller's tolerance, typically in ten iterations.
    """
    from otcore._sinkhorn import sinkhorn

    step = {k: v for k, v in kwargs.items() if k in ("method", "reg_m")}
    f = None
    for _ in range(_SYMMETRIC_ITERS):
        init = None if f is None else (f, None)
        Tf = sinkhorn(a, a, M, reg, n_iter=1, tol=None, init=init, warn=False, **step).g
        f = Tf if f is None else 0.5 * (f + Tf)
    return sinkhorn(a, a, M, reg, init=(f, f), **kwargs)


def sinkhorn_divergence_value_and_grad(a, b, M, reg, *, positions: bool = True, **kwargs):
    r"""The Sinkhorn divergence and its gradients with respect to weights and positions.

    Parameters
    ----------
    a : array (..., n)
        Source weights (a batch along leading axes), positive total mass.
        ``None`` or ``[]``: uniform.
    b : array (..., m)
        Target weights, the same total mass as ``a``.
    M : PointCloud or tuple of three arrays
        The costs: a :class:`otcore.PointCloud` (the self-costs are the
        clouds against themselves, with the same metric, ``scale`` and
        ``memory``), or ``(M_ab, M_aa, M_bb)`` of shapes (n, m), (n, n),
        (m, m).
    reg : float > 0
        :math:`\varepsilon`. GeomLoss's ``blur`` is
        :math:`\varepsilon^{1/p}` with the cost :math:`\tfrac1p\|x-y\|^p`:
        ``SamplesLoss("sinkhorn", p=2, blur=s)`` is ``reg = s**2`` with
        ``PointCloud(x, y, scale=0.5)``.
    positions : bool
        Also compute the gradients with respect to the points (PointCloud
        only; a few more passes over the costs).
    **kwargs
        Passed to :func:`otcore.sinkhorn` (``tol``, ``n_iter``,
        ``method``, ``eps_scaling``, ``warn``).

    Returns
    -------
    value : array, batch shape
    grads : tuple ``(d_a, d_b, d_x, d_y)``
        ``d_a`` (..., n), ``d_b`` (..., m); ``d_x`` (..., n, d), ``d_y``
        (..., m, d) for a PointCloud (``None`` for matrices or
        ``positions=False``). For ``PointCloud(x)`` (``y`` is ``x``)
        ``d_x`` is the total gradient and ``d_y`` is ``None``. ``d_a``
        and ``d_b`` are exact for perturbations that keep the total mass
        (the divergence is defined on measures of equal mass).
    """
    Mab, Maa, Mbb = _costs(M)
    rab = _solve(a, b, Mab, reg, kwargs)
    raa = _solve_self(a, Maa, reg, kwargs)
    rbb = _solve_self(b, Mbb, reg, kwargs)
    xp = namespace(rab.f)
    a_, b_ = _weights(xp, a, rab.f), _weights(xp, b, rab.g)
    fab, gab = _relative(xp, rab.f, a_, reg), _relative(xp, rab.g, b_, reg)
    faa, gaa = _relative(xp, raa.f, a_, reg), _relative(xp, raa.g, a_, reg)
    fbb, gbb = _relative(xp, rbb.f, b_, reg), _relative(xp, rbb.g, b_, reg)
    dot = lambda w, h: xp.sum(w * h, axis=-1)  # noqa: E731
    value = dot(a_, fab) + dot(b_, gab) - 0.5 * (dot(a_, faa + gaa) + dot(b_, fbb + gbb))
    d_a = fab - 0.5 * (faa + gaa)
    d_b = gab - 0.5 * (fbb + gbb)
    d_x = d_y = None
    if positions and isinstance(Mab, PointCloud):
        d_x, d_y = _position_grads(xp, Mab, Maa, Mbb, (rab, raa, rbb), reg, a_, b_)
    return value, (d_a, d_b, d_x, d_y)


def _weights(xp, w, like):
    """The weights as solved: uniform for ``None``/empty, broadcast to the potentials' shape."""
    if w is None or (hasattr(w, "__len__") and len(w) == 0):
        k = like.shape[-1]
        return xp.full(like.shape, 1.0 / k, dtype=like.dtype)
    w = xp.asarray(w, dtype=like.dtype) if not hasattr(w, "shape") else w
    return xp.broadcast_to(xp.astype(w, like.dtype), like.shape)


def _position_grads(xp, Mab, Maa, Mbb, results, reg, a_, b_):
    """``(d_x, d_y)`` of the divergence: cross term minus half of each self term's total gradient."""
    rab, raa, rbb = results
    batch = tuple(rab.f.shape[:-1])

    def grads(C, res, wa, wb):
        ninf = xp.full((), -float("inf"), dtype=res.f.dtype)
        f = xp.reshape(xp.where(wa > 0, res.f, ninf), (-1, C.shape[0]))
        g = xp.reshape(xp.where(wb > 0, res.g, ninf), (-1, C.shape[1]))
        return C.position_grads(f, g, reg)

    d = Mab.x.shape[1]
    gx, gy = grads(Mab, rab, a_, b_)
    sx, sx2 = grads(Maa, raa, a_, a_)  # the self terms move both arguments: total gradient
    ty, ty2 = grads(Mbb, rbb, b_, b_)
    if Mab.symmetric:  # one set of points for a and b: every term moves with it
        d_x = gx + gy - 0.5 * (sx + sx2) - 0.5 * (ty + ty2)
        return xp.reshape(d_x, batch + (Mab.shape[0], d)), None
    d_x = gx - 0.5 * (sx + sx2)
    d_y = gy - 0.5 * (ty + ty2)
    return xp.reshape(d_x, batch + (Mab.shape[0], d)), xp.reshape(d_y, batch + (Mab.shape[1], d))


def sinkhorn_divergence(a, b, M, reg, **kwargs) -> Array:
    r"""The Sinkhorn divergence :math:`S_\varepsilon(a, b)` (Feydy et al. 2019).

    .. math::

        S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
            - \tfrac12 \mathrm{OT}_\varepsilon(a, a)
            - \tfrac12 \mathrm{OT}_\varepsilon(b, b),

    :math:`\mathrm{OT}_\varepsilon` with the entropy relative to
    :math:`a \otimes b`: symmetric, zero for ``a = b`` on the same points,
    positive otherwise (for ``sqeuclidean``/``euclidean`` costs), and
    equal to GeomLoss's ``SamplesLoss("sinkhorn", debias=True)``.

    Parameters
    ----------
    a, b : arrays (..., n), (..., m)
        Weights of equal total mass (a batch along leading axes).
    M : PointCloud or (M_ab, M_aa, M_bb)
        A lazy point-cloud cost (the self-costs are built from it) or the
        three cost matrices.
    reg : float > 0
        :math:`\varepsilon`.
    **kwargs
        Passed to :func:`otcore.sinkhorn`.

    Returns
    -------
    array, batch shape

    See Also
    --------
    sinkhorn_divergence_value_and_grad : the value and its gradients.

    Examples
    --------
    >>> import numpy as np
    >>> from otcore import PointCloud, sinkhorn_divergence
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0]]); y = x + [0.0, 0.5]
    >>> a = np.array([0.5, 0.5])
    >>> C = PointCloud(x, y, scale=0.5)          # cost |x - y|^2 / 2, as GeomLoss for p = 2
    >>> print(f"{float(sinkhorn_divergence(a, a, C, 0.01)):.4f}")  # ~ |shift|^2 / 2
    0.1250
    >>> print(f"{float(sinkhorn_divergence(a, a, PointCloud(x, x.copy()), 0.01)):.1e}")
    0.0e+00
    """
    return sinkhorn_divergence_value_and_grad(a, b, M, reg, positions=False, **kwargs)[0]
