"""Framework-neutral pieces of the autodiff adapters (:mod:`otcore.torch`, :mod:`otcore.jax`).

The checks on ``pred``/``target``/``M`` that only read shapes and dtypes,
the value checks (through the array API, skipped on lazy arrays), the
reduction and the error renaming. Written against the array API via
:func:`otcore._array.namespace`; imports neither torch nor jax.
"""

from __future__ import annotations

import contextlib
import math

from otcore._array import is_lazy, namespace, size
from otcore._validate import _min_max, check_values

REDUCTIONS = ("mean", "sum", "none")
VALUES = ("sinkhorn", "regularized")
PAIR = "a = pred, b = target"


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
    """NaN/inf or negative masses raise; skipped on lazy arrays (JAX tracers, inside ``jit``)."""
    if is_lazy(x) or size(x) == 0:
        return
    lo, hi = _min_max(x, namespace(x))  # one transfer on GPUs; NaN propagates into both, +-inf into one
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite entries; all masses must be finite")
    if lo < 0:
        raise ValueError(
            f"{name} has negative entries (min {lo:g}); masses must be >= 0 "
            "(apply a softmax to raw scores first)"
        )


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
