"""Framework-neutral pieces of the autodiff adapters (:mod:`otcore.torch`, :mod:`otcore.jax`).

- ``SPECS``: the table of losses. Each :class:`LossSpec` names a core function
  of :mod:`otcore._losses` that returns ``(value, (d_pred, d_target,
  d_third))`` and the static arguments it takes; the torch adapter wraps every
  spec in one ``autograd.Function``, the JAX adapter in one ``custom_vjp``.
- The dtype and device contract shared by both adapters
  (:func:`compute_dtype`, :func:`check_devices`).
- The checks on ``pred``/``target``/``M`` that only read shapes and dtypes,
  the value checks (through the array API, skipped on lazy arrays), the
  reduction and the error renaming.

Written against the array API via :func:`otcore._array.namespace`; imports
neither torch nor jax.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

from otcore._array import device, is_lazy, namespace, size, to_host
from otcore._losses import (
    cdf_emd_loss_grads,
    emd_loss_grads,
    sinkhorn_divergence_loss_grads,
    sinkhorn_loss_grads,
    sinkhorn_unbalanced_loss_grads,
    tree_emd_loss_grads,
)
from otcore._losses import SINKHORN_GRADS
from otcore._validate import check_choice, check_int, check_scalar, check_values, mass_tolerance, scan_masses

REDUCTIONS = ("mean", "sum", "none")
VALUES = ("sinkhorn", "regularized")
PAIR = "a = pred, b = target"


@dataclass(frozen=True)
class LossSpec:
    """One loss of the adapters.

    ``run(a, b, third, need, **static)`` returns ``(value, (d_a, d_b,
    d_third))`` (:mod:`otcore._losses`); ``third`` names the third input
    (``"M"``, ``"spacing"`` or None); ``static`` the keyword arguments that
    are plain Python values; ``host``: the solver runs on the host (the JAX
    adapter calls it through ``jax.pure_callback``); ``square``: ``pred`` and
    ``target`` must have the same number of bins.
    """

    name: str
    run: Callable
    static: tuple
    third: str | None
    host: bool = False
    square: bool = True
    inputs: int = 3

    def call(self, a, b, third, need, static: dict):
        """``run`` with the core's errors renamed for the adapters' users (as :func:`renamed_errors`)."""
        try:  # (inline: a context manager costs more than a small loss's solve)
            return self.run(a, b, third, need, **static)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc} [{PAIR}]") from exc

    def call_many(self, arrays, need, static: dict, mapping: str = PAIR):
        """``run(*arrays, need, **static)`` for a spec of ``inputs`` arrays, errors renamed.

        The convention of every spec: the first two inputs are per-sample
        (batch + their own shape, one gradient per batch entry), the others
        are shared by the batch (the core returns their gradient per batch
        entry; the adapter contracts it with the incoming gradient).
        """
        with renamed_errors(self.name, mapping):
            return self.run(*arrays, need, **static)


SPECS = {
    "sinkhorn_loss": LossSpec(
        "sinkhorn_loss", sinkhorn_loss_grads, ("reg", "n_iter", "tol", "value", "grad", "method"), "M",
        square=False,
    ),
    "emd_loss": LossSpec("emd_loss", emd_loss_grads, (), "M", host=True, square=False),
    "cdf_emd_loss": LossSpec("cdf_emd_loss", cdf_emd_loss_grads, ("rho",), "spacing"),
    "tree_emd_loss": LossSpec("tree_emd_loss", tree_emd_loss_grads, ("parent", "weight", "rho"), None),
}
"""The losses with a closed-form backward. ``wasserstein_1d_loss`` is not in
the table: the framework differentiates :func:`otcore.wasserstein_1d` itself
(sorted-sample closed form, exact away from ties)."""

# specs of more than three differentiable inputs: run through the adapters' second generic path
SPECS["sinkhorn_divergence_loss"] = LossSpec(
    "sinkhorn_divergence_loss", sinkhorn_divergence_loss_grads,
    ("reg", "metric", "scale", "n_iter", "tol"), None, host=True, square=False, inputs=4,
)
POINTS = "a, b = weights, x, y = points"
# sinkhorn_loss(..., reg_m=...): the unbalanced problem's value and gradients (masses free)
SPECS["sinkhorn_unbalanced_loss"] = LossSpec(
    "sinkhorn_loss", sinkhorn_unbalanced_loss_grads, ("reg", "reg_m", "n_iter", "tol", "method"), "M",
    square=False,
)

def sinkhorn_options(reg, n_iter, tol, value, reduction, grad, reg_m):
    """The checked options of ``sinkhorn_loss`` (both adapters): ``(reg, n_iter, tol)``."""
    check_choice("value", value, VALUES)
    check_choice("reduction", reduction, REDUCTIONS)
    check_choice("grad", grad, SINKHORN_GRADS)
    if reg_m is not None and value != "regularized":
        raise ValueError(
            "sinkhorn_loss with reg_m returns the unbalanced objective; pass value=\"regularized\" "
            "(the exact gradient of <P, M> is not available for unbalanced transport)"
        )
    return (check_scalar("reg", reg, positive=True), check_int("n_iter", n_iter, minimum=1),
            check_scalar("tol", tol, positive=True, allow_none=True))


def divergence_static(reg, metric, scale, n_iter, tol, reduction) -> dict:
    """The checked static arguments of ``sinkhorn_divergence_loss`` (both adapters)."""
    check_choice("reduction", reduction, REDUCTIONS)
    return {
        "reg": check_scalar("reg", reg, positive=True), "metric": metric,
        "scale": check_scalar("scale", scale, positive=True), "n_iter": check_int("n_iter", n_iter, minimum=1),
        "tol": tol if tol == "auto" else check_scalar("tol", tol, positive=True, allow_none=True),
    }


# float16 / bfloat16: computed in float32, results cast back (both adapters)
HALF = ("float16", "bfloat16")


def dtype_name(dtype) -> str:
    """``"float16"`` for ``torch.float16``, ``jnp.float16``, ``np.float16`` (their last dotted part)."""
    return str(dtype).rsplit(".", 1)[-1]


def compute_dtype(dtype) -> str | None:
    """The dtype the core computes in for inputs of ``dtype``: ``"float32"`` for halves, else None (as is)."""
    return "float32" if dtype_name(dtype) in HALF else None


def match_half_masses(pred, target, xp):
    """Half-precision histograms, upcast: ``target`` rescaled to ``pred``'s total per row.

    Equal masses are checked at half precision (the library's one mass rule,
    :func:`otcore._validate.mass_tolerance` of float16: ``1e-2``) instead of the float32 tolerance, which a float16 softmax misses;
    ``target`` is rescaled so that the core's float32 check passes (the
    gradient with respect to ``pred`` is unchanged). Lazy inputs: rescaled,
    not checked.
    """
    sp = xp.sum(pred, axis=-1, keepdims=True)
    st = xp.sum(target, axis=-1, keepdims=True)
    if not is_lazy(pred) and not is_lazy(target) and size(sp):
        rel = xp.max(xp.abs(sp - st) / xp.maximum(xp.maximum(sp, st), xp.asarray(1e-30, dtype=sp.dtype)))
        rel = float(to_host(rel))
        tol = mass_tolerance("float16")
        if not rel <= tol:
            raise ValueError(
                f"pred and target must have the same total mass per row (relative tolerance "
                f"{tol:g} for float16/bfloat16 input, got {rel:.3g}); normalise both, "
                "e.g. x / x.sum(-1, keepdims=True)"
            )
    return target * (sp / st)


def check_devices(device_of, move_hint: str, **arrays) -> None:
    """Every array given lives on the same device as the first one (arrays whose device is None are skipped).

    ``device_of(x)`` returns the device of ``x`` or None (not an array of the
    framework, or a traced value); ``move_hint`` a format string with
    ``{name}`` and ``{first}`` for the message.
    """
    first, dev0 = None, None
    for name, x in arrays.items():
        dev = None if x is None else device_of(x)
        if dev is None:
            continue
        if first is None:
            first, dev0 = name, dev
        elif dev != dev0:
            raise ValueError(
                f"{name} is on {dev} but {first} is on {dev0}; all inputs of a loss must be on one device, "
                + move_hint.format(name=name, first=first)
            )


@contextlib.contextmanager
def renamed_errors(where: str, mapping: str = PAIR):
    """Re-raise core ``ValueError``s prefixed with the loss name and the argument mapping."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{where}: {exc} [{mapping}]") from exc


def reduce(loss, reduction: str, xp=None):
    """``loss`` averaged (``"mean"``), summed (``"sum"``) or as is (``"none"``).

    ``xp``: the namespace of ``loss`` when the caller knows it (saves the lookup).
    """
    if reduction == "none":
        return loss
    xp = namespace(loss) if xp is None else xp
    return xp.mean(loss) if reduction == "mean" else xp.sum(loss)


def not_floating(name: str, dtype, *, one_hot: str, cast: str) -> ValueError:
    """The error for a non-floating ``name``; class labels get the one-hot hint."""
    hint = f"for class labels use {one_hot}" if name == "target" else f"convert it, e.g. {cast}"
    return ValueError(f"{name} must have a floating dtype, got {dtype}; {hint}")


def check_bins(x, name: str) -> None:
    """``x`` has a non-empty last (bins) axis."""
    if x.ndim == 0:
        raise ValueError(f"{name} must have bins on its last axis, shape (N, K) or (K,); got a scalar")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} is empty; a histogram needs at least one bin")


def check_pair_shapes(pred, target, *, square: bool) -> None:
    """Same shape (``square``) or same batch shape (``pred`` (N, n), ``target`` (N, m))."""
    if square and pred.shape != target.shape:
        raise ValueError(
            f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}; "
            "both must be (N, K) batches of histograms of the same shape"
        )
    if not square and pred.shape[:-1] != target.shape[:-1]:
        raise ValueError(
            f"pred has batch shape {tuple(pred.shape[:-1])} but target has batch shape "
            f"{tuple(target.shape[:-1])}; both must hold the same number of histograms"
        )


def check_cost_shape(M, pred, target) -> None:
    """``M`` is the (pred bins, target bins) cost."""
    n, m = pred.shape[-1], target.shape[-1]
    if M.ndim != 2 or M.shape[0] != n or M.shape[1] != m:
        raise ValueError(
            f"M has shape {tuple(M.shape)} but pred has {n} bins and target {m}; "
            f"M must be the ({n}, {m}) ground cost between their bins"
        )


def check_masses(x, name: str) -> None:
    """NaN/inf, negative masses or all-zero rows raise (the library's one scan,
    :func:`otcore._validate.scan_masses`); skipped on lazy arrays (JAX tracers, inside ``jit``)."""
    if size(x) == 0:
        return
    scan_masses(x, name, hint=" (apply a softmax to raw scores first)")


def check_samples(u_values, v_values, u_weights, v_weights, as_array, xp=None):
    """Checks of :func:`otcore.wasserstein_1d`'s inputs for the adapters.

    ``as_array(x, name)`` is the adapter's type/dtype/bins check (returns
    the array); ``xp`` the namespace when the caller knows it. Returns
    ``(u_values, v_values, u_weights, v_weights)``, all of ``u_values``' dtype.
    """
    u_values = as_array(u_values, "u_values")
    v_values = as_array(v_values, "v_values")
    if u_values.shape[:-1] != v_values.shape[:-1]:
        raise ValueError(
            f"u_values has batch shape {tuple(u_values.shape[:-1])} but v_values has "
            f"{tuple(v_values.shape[:-1])}; both must hold the same number of distributions"
        )
    xp = namespace(u_values, v_values) if xp is None else xp
    dtype = u_values.dtype
    if v_values.dtype != dtype:
        v_values = xp.astype(v_values, dtype)
    check_values(u_values, "u_values", xp, nonneg=False, what="sample positions")
    check_values(v_values, "v_values", xp, nonneg=False, what="sample positions")
    weights = []
    for w, x, name in ((u_weights, u_values, "u_weights"), (v_weights, v_values, "v_weights")):
        if w is not None:
            w = as_array(w, name)
            if w.shape != x.shape:
                raise ValueError(
                    f"{name} has shape {tuple(w.shape)} but its values have shape {tuple(x.shape)}; "
                    "pass one weight per sample"
                )
            check_masses(w, name)
            if w.dtype != dtype:
                w = xp.astype(w, dtype)
        weights.append(w)
    return u_values, v_values, weights[0], weights[1]


def prepare_points(a, x, b, y):
    """Weights and points of a point-cloud loss, after the framework's type checks.

    Shapes checked; ``None`` weights become uniform; one weight vector against
    a batch is broadcast; masses checked; half precision upcast to float32
    (the contract of every loss), with ``b`` rescaled to ``a``'s total at the
    half-precision tolerance. Returns ``(a, x, b, y, out_dtype)``.
    """
    check_point_inputs(a, x, b, y)
    xp = namespace(x, y)
    out_dtype = x.dtype
    half = any(t is not None and compute_dtype(t.dtype) is not None for t in (a, x, b, y))
    dtype = xp.float32 if half else x.dtype
    x, y = xp.astype(x, dtype), xp.astype(y, dtype)
    if a is None:
        a = xp.full(x.shape[:1], 1.0 / x.shape[0], dtype=dtype, device=device(x))
    if b is None:
        b = xp.full(y.shape[:1], 1.0 / y.shape[0], dtype=dtype, device=device(y))
    if a.ndim != b.ndim:  # one weight vector against a batch: broadcast
        batch = tuple((a if a.ndim > b.ndim else b).shape[:-1])
        a = xp.broadcast_to(a, batch + tuple(a.shape[-1:]))
        b = xp.broadcast_to(b, batch + tuple(b.shape[-1:]))
    half_w = compute_dtype(a.dtype) is not None or compute_dtype(b.dtype) is not None
    a, b = xp.astype(a, dtype), xp.astype(b, dtype)
    check_masses(a, "a")
    check_masses(b, "b")
    if half_w:
        b = match_half_masses(a, b, xp)
    return a, x, b, y, out_dtype


def check_point_inputs(a, x, b, y) -> None:
    """Shapes of a point-cloud loss's inputs: ``x`` (n, d), ``y`` (m, d), weights batch + (n,), batch + (m,)."""
    for name, p in (("x", x), ("y", y)):
        if p.ndim != 2 or p.shape[0] == 0:
            raise ValueError(
                f"{name} has shape {tuple(p.shape)}; pass a non-empty (n, d) array of n points in d dimensions "
                f"(a single 1-D cloud is {name}[:, None])"
            )
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but y has shape {tuple(y.shape)}; both clouds need the same dimension d"
        )
    for name, w, p, pname in (("a", a, x, "x"), ("b", b, y, "y")):
        if w is not None and (w.ndim == 0 or w.shape[-1] != p.shape[0]):
            raise ValueError(
                f"{name} has shape {tuple(w.shape)} but {pname} holds {p.shape[0]} points; "
                f"pass one weight per point (shape (..., {p.shape[0]})) or None for uniform weights"
            )
    if a is not None and b is not None and a.shape[:-1] != b.shape[:-1]:
        raise ValueError(
            f"a has batch shape {tuple(a.shape[:-1])} but b has {tuple(b.shape[:-1])}; "
            "both must hold the same number of weight vectors"
        )
