r"""PyTorch losses on top of the otcore solvers.

Every loss takes batches of histograms ``pred`` and ``target`` of shape
``(N, K)`` (last axis = bins, any leading batch shape) and returns, like
``torch.nn`` losses, a scalar (``reduction="mean"`` or ``"sum"``) or the
per-sample losses (``reduction="none"``). Each is a
:class:`torch.autograd.Function`: the forward runs the otcore solver on the
tensors' own memory, never a copy -- CUDA tensors through array-api-compat,
CPU tensors as zero-copy numpy views (``Tensor.numpy()``, the core's
lowest-overhead path; results come back with ``torch.from_numpy``) -- except
:func:`emd_loss`, whose linear program runs on the host by design. The
backward multiplies a closed-form gradient, computed in the forward, by
``grad_output``:

================================  ==========================================
loss                              gradient used in the backward
================================  ==========================================
:func:`sinkhorn_loss`             Frogner et al.'s
                                  :math:`\varepsilon(\log u - \overline{\log u})`
                                  (``SinkhornResult.grad``)
:func:`emd_loss`                  dual potentials :math:`f - \bar f`,
                                  :math:`g - \bar g`
:func:`cdf_emd_loss`              ``otcore.cdf_emd_grad``
:func:`tree_emd_loss`             ``otcore.tree_emd_grad``
:func:`wasserstein_1d_loss`       autograd through the sorted-sample
                                  (quantile) closed form
================================  ==========================================

All gradients with respect to histograms are centred (they sum to zero over
the bins): a histogram lives on the simplex, where the gradient is defined up
to a constant; compose with a softmax (as a classifier does) and the constant
drops out.

Importing :mod:`otcore` never imports torch; this module does.

Examples
--------
>>> import torch
>>> from otcore.torch import sinkhorn_loss
>>> M = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
>>> logits = torch.zeros(3, 2, requires_grad=True)
>>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
>>> loss = sinkhorn_loss(torch.softmax(logits, -1), target, M, 0.1)
>>> loss.backward()
>>> logits.grad.shape
torch.Size([3, 2])
"""

from __future__ import annotations

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised without torch only
    raise ImportError(
        "otcore.torch needs PyTorch; install it with `pip install 'otcore[torch]'` "
        "(or see https://pytorch.org for CUDA builds)"
    ) from exc

import array_api_compat.torch as _xp
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
from otcore._array import size
from otcore._validate import check_choice, check_int, check_scalar, check_values

__all__ = [
    "sinkhorn_loss",
    "WassersteinLoss",
    "emd_loss",
    "wasserstein_1d_loss",
    "cdf_emd_loss",
    "tree_emd_loss",
]


# --------------------------------------------------------------------------- checks
def _check_tensor(x, name: str):
    """``x`` is a float32/float64 tensor with a non-empty bins axis; returned as is."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise not_floating(
            name, x.dtype, one_hot="torch.nn.functional.one_hot(labels, K).to(pred.dtype)", cast=f"{name}.double()"
        )
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"{name} has dtype {x.dtype}; the losses run in float32 or float64, "
            f"cast it first, e.g. {name}.float()"
        )
    check_bins(x, name)
    return x


def _check_masses(x, name: str) -> None:
    """NaN/inf or negative masses raise (CPU: on the zero-copy numpy view; one host sync on a GPU)."""
    check_masses(_to_core(x), name)


# CPU tensors are handed to the core as zero-copy numpy views (``Tensor.numpy()``
# shares memory), and the results come back with ``torch.from_numpy`` (also
# zero-copy): the core's numpy path has far less per-operation overhead than
# torch dispatch through array-api-compat on small problems. CUDA (and any
# other device) tensors go to the core as torch tensors (array-api-compat).
_USE_VIEWS = True


def _to_core(x):
    """A CPU tensor as a zero-copy numpy view; anything else unchanged."""
    if _USE_VIEWS and isinstance(x, torch.Tensor) and _viewable(x):
        if x.requires_grad:
            x = x.detach()
        return (x.resolve_neg() if x.is_neg() else x).numpy()
    return x


def _viewable(x) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _from_core(x):
    """A core result back as a tensor (zero-copy from numpy)."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.asarray(x))


def _check_pair(pred, target, *, square: bool = True, values: bool = True):
    """Type, dtype, shape and (``values``) value checks on pred/target; target cast to pred's dtype."""
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    check_pair_shapes(pred, target, square=square)
    if target.device != pred.device:
        raise ValueError(f"target is on {target.device} but pred is on {pred.device}; move one of them")
    if target.dtype != pred.dtype:
        target = target.to(pred.dtype)
    if values:
        _check_masses(pred, "pred")
        _check_masses(target, "target")
    return pred, target


def _as_cost(M, pred, target):
    """M as a tensor of pred's dtype and device, of shape (pred bins, target bins)."""
    if isinstance(M, torch.Tensor):
        if M.dtype != pred.dtype or M.device != pred.device:
            M = M.to(device=pred.device, dtype=pred.dtype)
    else:
        try:
            M = torch.as_tensor(M, dtype=pred.dtype, device=pred.device)
        except Exception as exc:
            raise TypeError(f"M must be a 2-D cost matrix (tensor or array), got {type(M).__name__}") from exc
    check_cost_shape(M, pred, target)
    return M


def _needs_grad(*xs) -> bool:
    return torch.is_grad_enabled() and any(x.requires_grad for x in xs)


def _center(x):
    return x - x.mean(dim=-1, keepdim=True)


def _scale(gout, grad, needed: bool):
    if not needed or grad is None:
        return None
    return gout.unsqueeze(-1) * grad


# --------------------------------------------------------------------------- Sinkhorn
def _reduce_core(loss, reduction: str):
    """Reduce a core result (numpy array or tensor) as a torch loss would."""
    if reduction != "none" and isinstance(loss, np.ndarray):  # ndarray.sum: far cheaper than np.mean
        red = loss.sum()
        return np.asarray(red / loss.size if reduction == "mean" else red)
    return reduce(loss, reduction, _xp)


class _SinkhornFn(torch.autograd.Function):
    """Sinkhorn loss with the reduction fused in (one autograd node).

    The forward saves only what the backward needs: Frogner's gradient,
    already divided by the batch size for ``reduction="mean"``, and the
    centred ``g`` when ``target`` needs a gradient.
    """

    @staticmethod
    def forward(ctx, pred, target, opts):
        # the non-tensor arguments travel as one tuple (each argument of
        # ``apply`` costs time in the forward and the backward); M gets no
        # gradient, so it is not an input of the graph
        M, reg, n_iter, tol, value, want_b, reduction, deferred = opts
        from otcore._sinkhorn import sinkhorn

        try:
            res = sinkhorn(_to_core(pred), _to_core(target), _to_core(M), reg, n_iter=n_iter, tol=tol)
        except ValueError as exc:
            if deferred:  # the adapter's own messages for NaN/negative masses first
                _check_masses(pred, "pred")
                _check_masses(target, "target")
            raise ValueError(f"sinkhorn_loss: {exc} [a = pred, b = target]") from exc
        loss = res.cost if value == "sinkhorn" else res.reg_cost
        ga, gb = res.grad, (res.g if want_b else None)
        scale = 1.0 / size(loss) if reduction == "mean" else 1.0
        if gb is not None:
            gb = _center(_from_core(gb))
            if scale != 1.0:
                gb = gb * scale
        if scale != 1.0:
            if isinstance(ga, np.ndarray):
                np.multiply(ga, scale, out=ga)  # the result's own fresh array
            else:
                ga = ga * scale
        ctx.reduced = reduction != "none"
        ctx.save_for_backward(_from_core(ga), gb)
        return _from_core(_reduce_core(loss, reduction))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        ga, gb = ctx.saved_tensors
        need = ctx.needs_input_grad
        if not ctx.reduced:
            gout = gout.unsqueeze(-1)
        da = gout * ga if need[0] else None
        db = gout * gb if (need[1] and gb is not None) else None
        return da, db, None


def sinkhorn_loss(pred, target, M, reg, *, n_iter=50, tol=None, value="sinkhorn", reduction="mean"):
    r"""Entropic Wasserstein loss between batches of histograms (Sinkhorn).

    Runs :func:`otcore.sinkhorn` on the tensors (CPU or CUDA, no host
    copy) and back-propagates Frogner et al.'s closed-form gradient
    :math:`\nabla_a = \varepsilon(\log u - \overline{\log u})`.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n) and (N, m) (or (n,), (m,))
        Histograms (non-negative, equal total mass per row), e.g. softmax
        outputs and one-hot or soft labels. ``target`` is cast to ``pred``'s
        dtype.
    M : torch.Tensor or array_like, shape (n, m)
        Ground cost; moved to ``pred``'s device and dtype.
    reg : float
        Entropic regularisation :math:`\varepsilon > 0` (:math:`1/\lambda` in
        the notation of Frogner et al. and Dhariwal & Inala, where
        :math:`K = e^{-\lambda M}`), in the units of ``M``.
    n_iter : int, default 50
        Sinkhorn iterations (fixed count when ``tol`` is None, as in the
        seed papers; the maximum count otherwise).
    tol : float or None
        Stop when the marginal error falls below ``tol``.
    value : {"sinkhorn", "regularized"}
        ``"sinkhorn"`` returns the Sinkhorn distance :math:`\langle P_\varepsilon, M\rangle`
        (the seeds' loss); its gradient is then Frogner's *surrogate*.
        ``"regularized"`` returns :math:`\mathrm{OT}_\varepsilon`, whose exact
        gradient (at convergence) is the one back-propagated.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    torch.Tensor
        0-d (``"mean"``/``"sum"``) or of the batch shape (``"none"``), with
        ``pred``'s dtype and device.

    Notes
    -----
    ``target`` also receives a gradient (the centred dual potential
    :math:`g - \bar g`) when it requires grad. The cost ``M`` and ``reg``
    receive none.

    Examples
    --------
    >>> import torch
    >>> M = 1.0 - torch.eye(3, dtype=torch.float64)
    >>> p = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    >>> t = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> print(f"{float(sinkhorn_loss(p, t, M, 0.05)):.3f}")
    0.500
    """
    check_choice("value", value, VALUES)
    check_choice("reduction", reduction, REDUCTIONS)
    reg = check_scalar("reg", reg, positive=True)
    n_iter = check_int("n_iter", n_iter, minimum=1)
    tol = check_scalar("tol", tol, positive=True, allow_none=True)
    # CPU tensors: the core's (accept-only) input checks cover NaN and negative
    # masses; the adapter's own value checks run only when the core rejects
    deferred = _USE_VIEWS and isinstance(pred, torch.Tensor) and _viewable(pred)
    pred, target = _check_pair(pred, target, square=False, values=not deferred)
    M = _as_cost(M, pred, target)
    opts = (M, reg, n_iter, tol, value, _needs_grad(target), reduction, deferred)
    return _SinkhornFn.apply(pred, target, opts)


class WassersteinLoss(torch.nn.Module):
    r"""Sinkhorn loss as an ``nn.Module`` holding the ground cost.

    ``M`` and ``reg`` are registered buffers, so ``.to(device)``,
    ``.double()`` and ``state_dict()`` carry them.

    Parameters
    ----------
    M : array_like, shape (n, m)
        Ground cost between predicted and target bins.
    reg : float
        Entropic regularisation :math:`\varepsilon = 1/\lambda`.
    n_iter, tol, value, reduction
        As in :func:`sinkhorn_loss`.

    Examples
    --------
    >>> import torch
    >>> loss_fn = WassersteinLoss(1.0 - torch.eye(4), reg=0.1)
    >>> pred = torch.softmax(torch.randn(8, 4), -1)
    >>> target = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    >>> loss_fn(pred, target).shape
    torch.Size([])
    """

    def __init__(self, M, reg, *, n_iter=50, tol=None, value="sinkhorn", reduction="mean"):
        super().__init__()
        M = torch.as_tensor(M)
        if not M.is_floating_point():
            M = M.to(torch.get_default_dtype())
        if M.ndim != 2:
            raise ValueError(f"M must be a 2-D cost matrix, got shape {tuple(M.shape)}")
        check_values(M, "M", _xp, what="costs")
        self.register_buffer("M", M)
        self.register_buffer("reg", torch.tensor(check_scalar("reg", reg, positive=True), dtype=M.dtype))
        self.n_iter = check_int("n_iter", n_iter, minimum=1)
        self.tol = check_scalar("tol", tol, positive=True, allow_none=True)
        self.value = check_choice("value", value, VALUES)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)

    def forward(self, pred, target):
        return sinkhorn_loss(
            pred, target, self.M, float(self.reg), n_iter=self.n_iter, tol=self.tol,
            value=self.value, reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"n={self.M.shape[0]}, m={self.M.shape[1]}, reg={float(self.reg):g}, n_iter={self.n_iter}, "
            f"tol={self.tol}, value={self.value!r}, reduction={self.reduction!r}"
        )


# --------------------------------------------------------------------------- exact EMD
class _EMDFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred, target, M, want_b):
        from otcore._exact import emd

        with renamed_errors("emd_loss"):
            res = emd(_to_core(pred), _to_core(target), _to_core(M))
        ctx.save_for_backward(_center(_from_core(res.f)), _center(_from_core(res.g)) if want_b else None)
        return _from_core(res.cost)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        ga, gb = ctx.saved_tensors
        need = ctx.needs_input_grad
        return _scale(gout, ga, need[0]), _scale(gout, gb, need[1]), None, None


def emd_loss(pred, target, M, *, reduction="mean"):
    r"""Exact earth mover's distance loss (linear program on the host).

    The forward solves the transport LP with :func:`otcore.emd` (the
    one host transfer in this module); the backward uses the centred dual
    potentials :math:`f - \bar f` (for ``pred``) and :math:`g - \bar g` (for
    ``target``), a (sub)gradient of the EMD.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n), (N, m)
    M : array_like, shape (n, m)
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> import torch
    >>> M = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> p = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    >>> t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> print(f"{float(emd_loss(p, t, M)):.2f}")
    0.75
    """
    check_choice("reduction", reduction, REDUCTIONS)
    pred, target = _check_pair(pred, target, square=False)
    M = _as_cost(M, pred, target)
    return reduce(_EMDFn.apply(pred, target, M, _needs_grad(target)), reduction, _xp)


# --------------------------------------------------------------------------- 1D
def wasserstein_1d_loss(u_values, v_values, u_weights=None, v_weights=None, *, p=1, reduction="mean"):
    r"""Wasserstein loss between 1D empirical distributions (batched on leading axes).

    :func:`otcore.wasserstein_1d` evaluated on the tensors with
    autograd on: the closed form (sorted samples / quantile functions) is
    differentiated directly, which is exact away from ties and, for
    ``p=1``, from crossings :math:`F^{-1}(t) = G^{-1}(t)`.

    Parameters
    ----------
    u_values, v_values : torch.Tensor, shape (N, n), (N, m)
        Sample positions (any sign).
    u_weights, v_weights : torch.Tensor or None
        Sample masses (uniform when None).
    p : float, default 1
        Ground cost :math:`|x-y|^p`; returns what the core returns
        (:math:`W_p^p`).
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> import torch
    >>> u = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> v = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    >>> loss = wasserstein_1d_loss(u, v)
    >>> loss.backward()
    >>> print(f"{float(loss.detach()):.2f}", u.grad.tolist())
    0.75 [[-0.5, -0.5]]
    """
    from otcore._onedim import wasserstein_1d

    check_choice("reduction", reduction, REDUCTIONS)
    u_values, v_values, u_weights, v_weights = check_samples(
        u_values, v_values, u_weights, v_weights, _check_tensor, _xp
    )
    with renamed_errors("wasserstein_1d_loss", "u/v as named"):
        loss = wasserstein_1d(u_values, v_values, u_weights, v_weights, p=p)
    return reduce(loss, reduction, _xp)


class _GradLossFn(torch.autograd.Function):
    """Forward value + closed-form gradients computed by ``fns`` (value, grad(a, b))."""

    @staticmethod
    def forward(ctx, pred, target, value_fn, grad_fn, want_a, want_b, where):
        a, b = _to_core(pred), _to_core(target)
        with renamed_errors(where):
            loss = _from_core(value_fn(a, b))
            ga = _from_core(grad_fn(a, b)) if want_a else None
            gb = _from_core(grad_fn(b, a)) if want_b else None
        ctx.save_for_backward(ga, gb)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        ga, gb = ctx.saved_tensors
        need = ctx.needs_input_grad
        return _scale(gout, ga, need[0]), _scale(gout, gb, need[1]), None, None, None, None, None


def _grad_loss(pred, target, value_fn, grad_fn, where):
    want = torch.is_grad_enabled()
    return _GradLossFn.apply(
        pred, target, value_fn, grad_fn, want and pred.requires_grad, want and target.requires_grad, where
    )


def cdf_emd_loss(pred, target, *, rho=1, spacing=None, reduction="mean"):
    r"""EMD between histograms on a line through their CDFs; ``rho=2`` is the squared EMD.

    :math:`\sum_k s_k\,|C_k(\mathrm{pred}) - C_k(\mathrm{target})|^\rho`, with
    :math:`C` the cumulative sums and :math:`s` the bin spacing
    (:func:`otcore.cdf_emd`). ``rho=1`` is the 1D earth mover's
    distance with ground metric :math:`|i-j|`; ``rho=2`` is the squared EMD
    of Hou et al. used for ordinal classes. The backward uses
    :func:`otcore.cdf_emd_grad` (closed form, centred).

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n) (or (n,))
        Histograms of equal total mass per row.
    rho : float, default 1
    spacing : float or torch.Tensor of shape (n - 1,), optional
        Gaps between consecutive bins (unit gaps when None).
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    torch.Tensor
        0-d (``"mean"``/``"sum"``) or of shape ``(N,)`` (``"none"``).

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    >>> t = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> print(f"{float(cdf_emd_loss(p, t)):.2f} {float(cdf_emd_loss(p, t, rho=2)):.2f}")
    1.50 1.25
    """
    from otcore._onedim import cdf_emd, cdf_emd_grad

    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target = _check_pair(pred, target)
    if isinstance(spacing, torch.Tensor):  # to the core like pred (a numpy view on the CPU)
        spacing = _to_core(spacing.to(device=pred.device, dtype=pred.dtype))
    loss = _grad_loss(
        pred, target,
        lambda a, b: cdf_emd(a, b, rho=rho, spacing=spacing),
        lambda a, b: cdf_emd_grad(a, b, rho=rho, spacing=spacing),
        "cdf_emd_loss",
    )
    return reduce(loss, reduction, _xp)


def tree_emd_loss(pred, target, parent, weight=None, *, rho=1, reduction="mean"):
    r"""Tree earth mover's distance loss (closed form on a tree metric).

    :func:`otcore.tree_emd` forward, :func:`otcore.tree_emd_grad`
    backward. Pass a compiled tree (``otcore.compile_tree(parent,
    weight)``) as ``parent`` to avoid recompiling it at every step.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n)
        Histograms over the n nodes of the tree.
    parent : array_like of int, shape (n,), or Tree
        ``parent[i]`` is the parent of node ``i`` (-1 for the root), or a
        compiled tree.
    weight : array_like, shape (n,), optional
        Length of the edge from each node to its parent.
    rho : float, default 1
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> import torch
    >>> parent = [-1, 0, 0]
    >>> p = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    >>> t = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> print(f"{float(tree_emd_loss(p, t, parent)):.2f}")
    2.00
    """
    from otcore._tree import tree_emd, tree_emd_grad

    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target = _check_pair(pred, target)
    loss = _grad_loss(
        pred, target,
        lambda a, b: tree_emd(a, b, parent, weight, rho=rho),
        lambda a, b: tree_emd_grad(a, b, parent, weight, rho=rho),
        "tree_emd_loss",
    )
    return reduce(loss, reduction, _xp)
