r"""PyTorch losses on top of the otcore solvers.

Every loss takes batches of histograms ``pred`` and ``target`` of shape
``(N, K)`` (last axis = bins, any leading batch shape) and returns, like
``torch.nn`` losses, a scalar (``reduction="mean"`` or ``"sum"``) or the
per-sample losses (``reduction="none"``). Each is a
:class:`torch.autograd.Function`: the forward runs the otcore solver on the
tensors' own memory, never a copy -- CUDA tensors through array-api-compat,
CPU tensors as zero-copy numpy views (``Tensor.numpy()``, the core's
lowest-overhead path; results come back with ``torch.from_numpy``) -- except
:func:`emd_loss`, whose linear program runs on the host by design.

Every loss but :func:`wasserstein_1d_loss` is one entry of the table
``otcore._adapters.SPECS`` run through one ``autograd.Function``: the
forward asks the core (:mod:`otcore._losses`) for the value and the
gradients of the inputs that require one; the backward multiplies them by
``grad_output``. No maths lives here.

================================  ==================================  =======================
loss                              pred / target                       cost ``M``
================================  ==================================  =======================
:func:`sinkhorn_loss`             Frogner et al. (default) or exact   exact (implicit / plan)
                                  (``grad="implicit"``)
:func:`emd_loss`                  centred duals :math:`f - \bar f`,   optimal plan
                                  :math:`g - \bar g`
:func:`cdf_emd_loss`              ``otcore.cdf_emd_grad``             (no ``M``; ``spacing``
                                                                      tensor: raises)
:func:`tree_emd_loss`             ``otcore.tree_emd_grad``            (no ``M``; ``weight``
                                                                      tensor: raises)
:func:`wasserstein_1d_loss`       autograd through the sorted-sample  positions and weights
                                  (quantile) closed form
================================  ==================================  =======================

All gradients with respect to histograms are centred (they sum to zero over
the bins): a histogram lives on the simplex, where the gradient is defined up
to a constant; compose with a softmax (as a classifier does) and the constant
drops out.

dtype and device (the same contract as :mod:`otcore.jax`): float16 and
bfloat16 inputs are computed in float32 and the loss is cast back to the
input dtype (masses are compared at half precision); inputs on different
devices raise ``ValueError``.

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
    POINTS,
    REDUCTIONS,
    prepare_points,
    SPECS,
    VALUES,
    check_bins,
    check_devices,
    compute_dtype,
    divergence_static,
    match_half_masses,
    sinkhorn_options,
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
    "sinkhorn_divergence_loss",
    "SinkhornDivergence",
]


# --------------------------------------------------------------------------- checks
def _check_tensor(x, name: str):
    """``x`` is a floating tensor with a non-empty bins axis; returned as is."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise not_floating(
            name, x.dtype, one_hot="torch.nn.functional.one_hot(labels, K).to(pred.dtype)", cast=f"{name}.double()"
        )
    check_bins(x, name)
    return x


def _device_of(x):
    return x.device if isinstance(x, torch.Tensor) else None


_MOVE = "e.g. {name}.to({first}.device)"


# CPU tensors are handed to the core as zero-copy numpy views (``Tensor.numpy()``
# shares memory), and the results come back with ``torch.from_numpy`` (also
# zero-copy): the core's numpy path has far less per-operation overhead than
# torch dispatch through array-api-compat on small problems. CUDA (and any
# other device) tensors go to the core as torch tensors (array-api-compat).
_USE_VIEWS = True


def _to_core(x):
    """A CPU tensor as a zero-copy numpy view; anything else unchanged."""
    if _USE_VIEWS and isinstance(x, torch.Tensor) and x.dtype in _VIEW_DTYPES and x.device.type == "cpu":
        x = x.detach()
        return (x.resolve_neg() if x.is_neg() else x).numpy()
    return x


_VIEW_DTYPES = (torch.float32, torch.float64)


def _from_core(x):
    """A core result back as a tensor (zero-copy from numpy)."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    return torch.from_numpy(np.asarray(x))


def _half(x) -> bool:
    return compute_dtype(x.dtype) is not None


def _check_pair(pred, target, *, square: bool = True, match_masses: bool = True):
    """Type, dtype, shape and device checks on pred/target; target cast to pred's dtype.

    float16/bfloat16 ``pred`` is upcast to float32 (with ``target``, whose
    masses are matched to ``pred``'s at half precision unless
    ``match_masses`` is False: unbalanced losses); the caller casts the loss
    back to ``out_dtype``. Returns ``(pred, target, out_dtype)``.
    """
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    check_pair_shapes(pred, target, square=square)
    check_devices(_device_of, _MOVE, pred=pred, target=target)
    out_dtype = pred.dtype
    if _half(pred) or _half(target):
        pred, target = pred.float(), target.float()
        if match_masses:
            target = match_half_masses(pred, target, _xp)
    elif target.dtype != pred.dtype:
        target = target.to(pred.dtype)
    return pred, target, out_dtype


def _as_cost(M, pred, target):
    """M as a tensor of pred's dtype on pred's device, of shape (pred bins, target bins)."""
    if isinstance(M, torch.Tensor):
        check_devices(_device_of, _MOVE, pred=pred, M=M)
        if M.dtype != pred.dtype:
            M = M.to(pred.dtype)
    else:
        try:
            M = torch.as_tensor(M, dtype=pred.dtype, device=pred.device)
        except Exception as exc:
            raise TypeError(f"M must be a 2-D cost matrix (tensor or array), got {type(M).__name__}") from exc
    check_cost_shape(M, pred, target)
    return M


def _reduce_core(loss, reduction: str):
    """Reduce a core result (numpy array or tensor) as a torch loss would."""
    if reduction != "none" and isinstance(loss, np.ndarray):  # ndarray.sum: far cheaper than np.mean
        red = loss.sum()
        return np.asarray(red / loss.size if reduction == "mean" else red)
    return reduce(loss, reduction, _xp)


# --------------------------------------------------------------------------- the one Function
class _LossFn(torch.autograd.Function):
    """Any loss of ``otcore._adapters.SPECS``, its reduction fused in (one autograd node).

    The forward asks the core for the value and only the gradients whose
    inputs require one (``ctx.needs_input_grad``); the backward multiplies
    them by the incoming gradient (contracting the batch for the shared
    third input, e.g. the cost ``M``). The gradients are constants of the
    graph (neither inputs nor outputs), kept as plain ``ctx`` attributes.
    """

    @staticmethod
    def forward(ctx, run, pred, target, third):
        # ``run``: (spec, static kwargs, reduction) in one tuple (each argument
        # of ``apply`` costs time in the forward and the backward)
        spec, static, reduction = run
        need = ctx.needs_input_grad[1:4]
        a, b, t = _to_core(pred), _to_core(target), _to_core(third)
        try:
            value, (d_a, d_b, d_t) = spec.call(a, b, t, need, static)
        except ValueError:
            # the core checks values (NaN, negative masses) on every eager call;
            # the adapter's own messages, naming pred/target, come first
            check_masses(a, "pred")
            check_masses(b, "target")
            raise
        ctx.reduced = reduction != "none"
        ctx.scale = 1.0 / max(size(value), 1) if reduction == "mean" else 1.0
        if d_t is not None and ctx.reduced and pred.ndim > 1:  # shared input: sum the batch now
            d_t = _from_core(d_t).sum(dim=tuple(range(pred.ndim - 1)))
        ctx.grads = (_from_core(d_a), _from_core(d_b), _from_core(d_t))
        return _from_core(_reduce_core(value, reduction))

    @staticmethod
    def backward(ctx, gout):
        if torch.is_grad_enabled():  # create_graph=True: the results refuse a second backward
            return _backward_once(ctx, gout)
        return _backward(ctx, gout)


def _backward(ctx, gout):
    d_a, d_b, d_t = ctx.grads
    if ctx.reduced:
        g = gout * ctx.scale if ctx.scale != 1.0 else gout
        ga = gb = gt = g
    else:
        ga = gb = gout.unsqueeze(-1)
        gt = None
    out_a = ga * d_a if d_a is not None else None
    out_b = gb * d_b if d_b is not None else None
    if d_t is None:
        out_t = None
    elif gt is not None:
        out_t = gt * d_t
    else:  # per-sample losses: contract the batch of the shared input
        out_t = torch.tensordot(gout, d_t, dims=gout.ndim)
    return None, out_a, out_b, out_t


# the loss is differentiable once: under create_graph=True, differentiating its gradients raises
_backward_once = torch.autograd.function.once_differentiable(_backward)


def _apply(name, pred, target, third, static, reduction, out_dtype):
    """Run ``SPECS[name]`` through the one Function; the loss cast back to ``out_dtype`` (halves)."""
    loss = _LossFn.apply((SPECS[name], static, reduction), pred, target, third)
    return loss if loss.dtype == out_dtype else loss.to(out_dtype)


def _check_no_grad(x, name: str, why: str) -> None:
    if isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{name} requires grad, but {why}; pass {name}.detach()")


# --------------------------------------------------------------------------- Sinkhorn
def sinkhorn_loss(
    pred, target, M, reg, *, n_iter=50, tol=None, value="sinkhorn", reduction="mean", grad="frogner", reg_m=None
):
    r"""Entropic Wasserstein loss between batches of histograms (Sinkhorn).

    Runs :func:`otcore.sinkhorn` on the tensors (CPU or CUDA, no host
    copy); the backward uses the gradients computed by
    :func:`otcore._losses.sinkhorn_loss_grads` (see Notes).

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n) and (N, m) (or (n,), (m,))
        Histograms (non-negative, equal total mass per row), e.g. softmax
        outputs and one-hot or soft labels. ``target`` is cast to ``pred``'s
        dtype; float16/bfloat16 are computed in float32 and the loss is cast
        back.
    M : torch.Tensor or array_like, shape (n, m)
        Ground cost, on ``pred``'s device (a tensor elsewhere raises); cast
        to ``pred``'s dtype. Differentiable: ``M`` may require grad (e.g.
        ``otcore.cost_matrix(x, y)`` of points ``x`` that require grad).
    reg : float
        Entropic regularisation :math:`\varepsilon > 0` (:math:`1/\lambda` in
        the notation of Frogner et al. and Dhariwal & Inala, where
        :math:`K = e^{-\lambda M}`), in the units of ``M``.
    n_iter : int, default 50
        Sinkhorn iterations (fixed count when ``tol`` is None, as in
        Cuturi 2013 and Frogner et al. 2015; the maximum count otherwise).
    tol : float or None
        Stop when the marginal error falls below ``tol``.
    value : {"sinkhorn", "regularized"}
        ``"sinkhorn"`` returns the Sinkhorn distance
        :math:`\langle P_\varepsilon, M\rangle` (Cuturi 2013's loss);
        ``"regularized"`` returns :math:`\mathrm{OT}_\varepsilon`.
    reduction : {"mean", "sum", "none"}
    grad : {"frogner", "implicit"}
        Gradient with respect to ``pred``/``target`` for
        ``value="sinkhorn"`` (see Notes). Ignored for ``"regularized"``.
    reg_m : float, (float, float) or None
        Unbalanced transport (Frogner et al. 2015): the marginal constraints
        replaced by ``reg_m * KL(P 1 | pred) + reg_m * KL(P^T 1 | target)``
        (a pair for the two sides, ``math.inf`` for an exact one), as
        :func:`otcore.sinkhorn`; the masses may differ and are never
        rescaled. Needs ``value="regularized"``: the loss is the minimised
        unbalanced objective, with the envelope-theorem gradients
        :math:`\rho_a(1 - e^{-\hat f/\rho_a}) + \varepsilon(\sum b - e^{-\hat f/\rho_a})`
        for ``pred`` (likewise for ``target``, :math:`\hat f = f -
        \varepsilon\log a`) and the plan for ``M``; not centred (the
        masses are free).

    Returns
    -------
    torch.Tensor
        0-d (``"mean"``/``"sum"``) or of the batch shape (``"none"``), with
        ``pred``'s dtype and device.

    Notes
    -----
    ``value="regularized"``: every gradient is exact at convergence
    (envelope theorem): :math:`f - \bar f` for ``pred``, :math:`g - \bar g`
    for ``target``, the entropic plan :math:`P` for ``M``.

    ``value="sinkhorn"``, ``grad="frogner"`` (default): ``pred`` and
    ``target`` get Frogner et al.'s (2015) gradient, that of
    :math:`\mathrm{OT}_\varepsilon`: free (the potentials are already
    there) and what the published Wasserstein-loss layers train with; it is a
    *surrogate*, not the derivative of :math:`\langle P, M\rangle`.
    ``grad="implicit"``: the exact gradient of the fixed point (implicit
    differentiation; one linear solve of size ``n + m`` per pair). ``M``
    always gets the exact gradient (implicit), computed only when it
    requires grad. Both are exact at convergence; with a fixed ``n_iter``
    they are those of the last iterate. ``reg`` receives no gradient.

    Examples
    --------
    >>> import torch
    >>> M = 1.0 - torch.eye(3, dtype=torch.float64)
    >>> p = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    >>> t = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    >>> print(f"{float(sinkhorn_loss(p, t, M, 0.05)):.3f}")
    0.500
    """
    reg, n_iter, tol = sinkhorn_options(reg, n_iter, tol, value, reduction, grad, reg_m)
    # unbalanced: the masses are free (never rescaled to each other)
    pred, target, out_dtype = _check_pair(pred, target, square=False, match_masses=reg_m is None)
    M = _as_cost(M, pred, target)
    if reg_m is not None:
        static = {"reg": reg, "reg_m": reg_m, "n_iter": n_iter, "tol": tol, "method": "auto"}
        return _apply("sinkhorn_unbalanced_loss", pred, target, M, static, reduction, out_dtype)
    static = {"reg": reg, "n_iter": n_iter, "tol": tol, "value": value, "grad": grad, "method": "auto"}
    return _apply("sinkhorn_loss", pred, target, M, static, reduction, out_dtype)


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
def emd_loss(pred, target, M, *, reduction="mean"):
    r"""Exact earth mover's distance loss (linear program on the host).

    The forward solves the transport LP with :func:`otcore.emd` (the
    one host transfer in this module); the backward uses the centred dual
    potentials :math:`f - \bar f` (for ``pred``) and :math:`g - \bar g` (for
    ``target``) and the optimal plan :math:`P^\star` (for ``M``): the
    gradients where the dual and the plan are unique, subgradients
    otherwise (as POT's ``ot.emd2``).

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, n), (N, m)
    M : torch.Tensor or array_like, shape (n, m)
        May require grad (e.g. ``otcore.cost_matrix(x, y)``).
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
    pred, target, out_dtype = _check_pair(pred, target, square=False)
    M = _as_cost(M, pred, target)
    return _apply("emd_loss", pred, target, M, {}, reduction, out_dtype)


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
    check_devices(_device_of, _MOVE, u_values=u_values, v_values=v_values, u_weights=u_weights, v_weights=v_weights)
    u_values, v_values, u_weights, v_weights = check_samples(
        u_values, v_values, u_weights, v_weights, _check_tensor, _xp
    )
    out_dtype = u_values.dtype
    if compute_dtype(out_dtype) is not None:
        u_values, v_values = u_values.float(), v_values.float()
        u_weights, v_weights = (None if w is None else w.float() for w in (u_weights, v_weights))
    with renamed_errors("wasserstein_1d_loss", "u/v as named"):
        loss = wasserstein_1d(u_values, v_values, u_weights, v_weights, p=p)
    loss = reduce(loss, reduction, _xp)
    return loss if loss.dtype == out_dtype else loss.to(out_dtype)


def cdf_emd_loss(pred, target, *, rho=1, spacing=None, reduction="mean"):
    r"""EMD between histograms on a line through their CDFs; ``rho=2`` is the squared EMD.

    :math:`\sum_k s_k\,|C_k(\mathrm{pred}) - C_k(\mathrm{target})|^\rho`, with
    :math:`C` the cumulative sums and :math:`s` the bin spacing
    (:func:`otcore.cdf_emd`). ``rho=1`` is the 1D earth mover's
    distance with ground metric :math:`|i-j|`; ``rho=2`` is the squared EMD
    of Hou et al. (2016) used for ordinal classes. The backward uses
    :func:`otcore.cdf_emd_grad` (closed form, centred); a ``spacing``
    tensor that requires grad raises (no gradient is computed for it).

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
    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    pred, target, out_dtype = _check_pair(pred, target)
    third = None
    if isinstance(spacing, torch.Tensor):  # an input of the Function (asking for its gradient raises)
        check_devices(_device_of, _MOVE, pred=pred, spacing=spacing)
        third, spacing = spacing.to(pred.dtype), None
    static = {"rho": rho} if spacing is None else {"rho": rho, "spacing": spacing}
    return _apply("cdf_emd_loss", pred, target, third, static, reduction, out_dtype)


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
    check_choice("reduction", reduction, REDUCTIONS)
    rho = check_scalar("rho", rho, positive=True)
    _check_no_grad(weight, "weight", "the tree's edge lengths receive no gradient in tree_emd_loss")
    pred, target, out_dtype = _check_pair(pred, target)
    static = {"parent": parent, "weight": weight, "rho": rho}
    return _apply("tree_emd_loss", pred, target, None, static, reduction, out_dtype)



# --------------------------------------------------------------------------- the generic Function of many inputs
class _ManyLossFn(torch.autograd.Function):
    """Any spec of ``otcore._adapters.SPECS`` with ``inputs`` arrays, its reduction fused in.

    The same contract as :class:`_LossFn` for any number of inputs: the
    first two are per-sample, the others shared by the batch
    (:meth:`otcore._adapters.LossSpec.call_many`); the core computes only
    the gradients whose inputs require one.
    """

    @staticmethod
    def forward(ctx, run, *arrays):
        spec, static, reduction = run
        need = ctx.needs_input_grad[1:]
        value, grads = spec.call_many(tuple(_to_core(x) for x in arrays), need, static, POINTS)
        value = _from_core(value)
        nb = value.ndim
        ctx.scale = 1.0 / max(value.numel(), 1) if reduction == "mean" else 1.0
        ctx.reduced = reduction != "none"
        out = []
        for i, d in enumerate(grads):
            d = _from_core(d)
            if d is not None and i >= 2 and ctx.reduced and nb:  # shared input: sum the batch now
                d = d.sum(dim=tuple(range(nb)))
            out.append(d)
        ctx.save_for_backward(*out)
        return reduce(value, reduction, _xp)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout):
        g = gout * ctx.scale if ctx.reduced and ctx.scale != 1.0 else gout
        res = [None]
        for i, d in enumerate(ctx.saved_tensors):
            if d is None:
                res.append(None)
            elif ctx.reduced:
                res.append(g * d)
            elif i < 2:
                res.append(gout.unsqueeze(-1) * d)
            else:  # per-sample losses: contract the batch of the shared input
                res.append(torch.tensordot(gout, d, dims=gout.ndim))
        return tuple(res)


def _check_points(a, x, b, y):
    """Types, shapes, devices of a point-cloud loss; uniform weights for None; halves upcast.

    Returns ``(a, x, b, y, out_dtype)``, all of ``x``'s dtype (float32 for
    float16/bfloat16 input).
    """
    x = _check_tensor(x, "x")
    y = _check_tensor(y, "y")
    a = None if a is None else _check_tensor(a, "a")
    b = None if b is None else _check_tensor(b, "b")
    check_devices(_device_of, _MOVE, x=x, y=y, a=a, b=b)
    return prepare_points(a, x, b, y)


def sinkhorn_divergence_loss(
    a, x, b, y, reg, *, metric="sqeuclidean", scale=1.0, n_iter=1000, tol="auto", reduction="mean"
):
    r"""Sinkhorn divergence between weighted point clouds (Feydy et al. 2019), PyTorch.

    .. math::

        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
            - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
        \qquad \alpha = \sum_i a_i \delta_{x_i},\ \beta = \sum_j b_j \delta_{y_j},

    computed by :func:`otcore.sinkhorn_divergence` on the lazy cost
    ``otcore.PointCloud(x, y, metric=metric, scale=scale)`` (no n x m
    matrix is stored beyond the cloud's memory budget). Gradients with
    respect to the weights and the positions come from
    :func:`otcore.sinkhorn_divergence_value_and_grad` (envelope theorem,
    exact at convergence); only those of the inputs that require grad are
    computed.

    Parameters
    ----------
    a : torch.Tensor of shape (n,) or (N, n), or None
        Weights of the points ``x`` (uniform when None). A batch of weight
        vectors shares the clouds.
    x : torch.Tensor, shape (n, d)
    b : torch.Tensor of shape (m,) or (N, m), or None
        Weights of ``y``, the same total mass as ``a``.
    y : torch.Tensor, shape (m, d)
    reg : float
        :math:`\varepsilon > 0`, in the units of the cost. GeomLoss's
        ``SamplesLoss("sinkhorn", p=2, blur=s)`` is ``reg=s**2`` with
        ``scale=0.5`` (its cost is :math:`\tfrac12\|x-y\|^2`).
    metric : {"sqeuclidean", "euclidean", ...}
        As in :class:`otcore.PointCloud`; ``scale`` multiplies the cost.
    n_iter, tol
        Maximum Sinkhorn iterations and the marginal tolerance of each of
        the three solves; ``tol="auto"`` is the dtype's default of
        :func:`otcore.sinkhorn` (1e-9 in float64, 1e-5 in float32 and for
        half precision, which is computed in float32).
    reduction : {"mean", "sum", "none"}
        Over the batch of weight vectors.

    Returns
    -------
    torch.Tensor
        0-d, or of the weights' batch shape (``"none"``), of ``x``'s dtype.
        float16/bfloat16 inputs are computed in float32 and cast back;
        inputs on different devices raise ``ValueError``.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    >>> y = torch.tensor([[0.0, 0.5], [1.0, 0.5]], dtype=torch.float64)
    >>> loss = sinkhorn_divergence_loss(None, x, None, y, 0.01, scale=0.5)
    >>> print(f"{loss.item():.4f}")
    0.1250
    >>> loss.backward()
    >>> print(x.grad.numpy().round(3))
    [[ 0.  -0.25]
     [ 0.  -0.25]]
    """
    static = divergence_static(reg, metric, scale, n_iter, tol, reduction)
    a, x, b, y, out_dtype = _check_points(a, x, b, y)
    loss = _ManyLossFn.apply((SPECS["sinkhorn_divergence_loss"], static, reduction), a, b, x, y)
    return loss if loss.dtype == out_dtype else loss.to(out_dtype)


class SinkhornDivergence(torch.nn.Module):
    r"""The Sinkhorn divergence between point clouds as a ``torch.nn`` loss module.

    Called like GeomLoss's ``SamplesLoss``: ``loss(x, y)`` with uniform
    weights, or ``loss(a, x, b, y)`` with weights (either may be None).
    See :func:`sinkhorn_divergence_loss` for the maths, the arguments and
    the gradients. ``SinkhornDivergence(s**2, scale=0.5)`` is GeomLoss's
    ``SamplesLoss("sinkhorn", p=2, blur=s, debias=True)``.

    Parameters
    ----------
    reg : float
        :math:`\varepsilon > 0`.
    metric, scale, n_iter, tol, reduction
        As in :func:`sinkhorn_divergence_loss`.

    Examples
    --------
    >>> import torch
    >>> loss = SinkhornDivergence(0.01, scale=0.5)
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    >>> print(f"{float(loss(x, x + torch.tensor([0.0, 0.5], dtype=torch.float64))):.4f}")
    0.1250
    """

    def __init__(self, reg, *, metric="sqeuclidean", scale=1.0, n_iter=1000, tol="auto", reduction="mean"):
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.reg = check_scalar("reg", reg, positive=True)
        self.metric, self.scale, self.n_iter, self.tol, self.reduction = metric, scale, n_iter, tol, reduction

    def forward(self, *args):
        """``forward(x, y)`` (uniform weights) or ``forward(a, x, b, y)``."""
        if len(args) == 2:
            a, x, b, y = None, args[0], None, args[1]
        elif len(args) == 4:
            a, x, b, y = args
        else:
            raise TypeError(
                f"SinkhornDivergence takes (x, y) or (a, x, b, y), got {len(args)} arguments"
            )
        return sinkhorn_divergence_loss(
            a, x, b, y, self.reg, metric=self.metric, scale=self.scale, n_iter=self.n_iter, tol=self.tol,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"reg={self.reg}, metric={self.metric!r}, scale={self.scale}, reduction={self.reduction!r}"


