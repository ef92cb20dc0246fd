"""Input checks for the whole library, in one place.

Every public function calls these at its top. Each check raises a
``ValueError`` (bad values or shapes) or ``TypeError`` (bad types) whose
message names the argument and says how to fix it. Value checks (finite,
non-negative, equal mass) are skipped on lazy arrays (JAX tracers inside
``jit``, dask) whose values cannot be read.

The histogram convention used everywhere: the **last axis indexes bins**,
leading axes are a batch. ``a`` of shape ``(..., n)``, ``b`` of shape
``(..., m)`` (batch shapes broadcast against each other) and one shared cost
``M`` of shape ``(n, m)``; results carry the broadcast batch shape.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

from otcore._array import Array, as_float, float_dtype, is_lazy, namespace

__all__ = [
    "ConvergenceWarning",
    "check_choice",
    "check_scalar",
    "check_int",
    "check_values",
    "check_cost",
    "check_histograms",
    "mass_rtol",
    "batch_shape",
]


class ConvergenceWarning(RuntimeWarning):
    """An iterative solver stopped before reaching its tolerance.

    The result is still returned (with ``converged=False``); the message says
    what to change (more iterations, a larger ``reg``, ``method="log"``...).
    """


def check_choice(name: str, value, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"unknown {name} {value!r}; choose one of " + ", ".join(repr(o) for o in options)
        )
    return value


def check_scalar(
    name: str,
    value,
    *,
    positive: bool = False,
    nonneg: bool = False,
    allow_none: bool = False,
    minimum: float | None = None,
) -> float | None:
    """A finite real Python number (``float``), checked for sign / lower bound."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a number, got None")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # 0-d arrays of any namespace are accepted
        try:
            if getattr(value, "shape", None) == ():
                value = float(value)
            else:
                raise TypeError
        except Exception:
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_int(name: str, value, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """A Python ``int`` >= ``minimum``."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be an integer, got None")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(x) -> bool:
    return bool(x)


def check_values(x: Array, name: str, xp, *, nonneg: bool = True, what: str = "entries") -> None:
    """Raise if ``x`` holds NaN/inf or (``nonneg``) negative values."""
    if is_lazy(x) or math.prod(x.shape) == 0:
        return
    if not _bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or infinite {what}; all {what} must be finite")
    if nonneg:
        mn = float(xp.min(x))
        if mn < 0:
            raise ValueError(f"{name} has negative {what} (min {mn:g}); {what} must be >= 0")


def mass_rtol(xp, dtype) -> float:
    """Relative tolerance on equal total masses for ``dtype``."""
    return 1e-6 if dtype == xp.float64 else 1e-4


def batch_shape(name_a: str, shape_a: Sequence[int], name_b: str, shape_b: Sequence[int]) -> tuple:
    """Broadcast two batch shapes, with a clear message when they do not."""
    try:
        return tuple(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    except ValueError:
        raise ValueError(
            f"batch shapes of {name_a} {tuple(shape_a)} and {name_b} {tuple(shape_b)} do not "
            "broadcast; the last axis indexes bins and leading axes are a batch, so pass "
            "e.g. (N, n) with (N, m), or (n,) with (N, m)"
        ) from None


def check_cost(
    M,
    xp,
    *,
    name: str = "M",
    shape: tuple[int | None, int | None] | None = None,
    dtype=None,
    nonneg: bool = True,
    square: bool = False,
) -> Array:
    """A 2-D finite cost matrix, optionally of a given ``shape``."""
    M = as_float(M, xp, dtype, name=name)
    if M.ndim != 2:
        raise ValueError(f"{name} must be a 2-D cost matrix of shape (n, m), got shape {tuple(M.shape)}")
    if square and M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(M.shape)}")
    if shape is not None:
        n, m = shape
        if n is not None and M.shape[0] != n:
            raise ValueError(
                f"{name} has {M.shape[0]} rows but the source histogram has {n} bins; "
                f"{name} must have shape (len(a), len(b)) = ({n}, {m if m is not None else 'm'})"
            )
        if m is not None and M.shape[1] != m:
            raise ValueError(
                f"{name} has {M.shape[1]} columns but the target histogram has {m} bins; "
                f"{name} must have shape (len(a), len(b)) = ({n if n is not None else 'n'}, {m})"
            )
    check_values(M, name, xp, nonneg=nonneg, what="costs")
    return M


def _check_hist(x, name: str, xp, dtype) -> Array:
    x = as_float(x, xp, dtype, name=name)
    if x.ndim == 0:
        raise ValueError(f"{name} must be a histogram with bins on its last axis, got a scalar")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} is empty; a histogram needs at least one bin")
    if is_lazy(x):
        return x
    check_values(x, name, xp, nonneg=True, what="masses")
    totals = xp.sum(x, axis=-1)
    if not _bool(xp.all(totals > 0)):
        raise ValueError(f"{name} has an all-zero histogram; every histogram needs positive total mass")
    return x


def check_histograms(
    a,
    b=None,
    M=None,
    *,
    names: tuple[str, str, str] = ("a", "b", "M"),
    check_mass: bool = True,
    nonneg_cost: bool = True,
):
    """Check and convert histograms ``a``, ``b`` and cost ``M``.

    Returns ``(xp, a, b, M)``: the namespace and the three arrays in one
    common real floating dtype (float64 unless every floating input is
    float32; integers promoted). ``b`` and ``M`` may be ``None``.

    Raises
    ------
    ValueError
        empty or all-zero histograms, NaN/inf/negative masses or costs, a cost
        of the wrong shape or not 2-D, batch shapes that do not broadcast, or
        (``check_mass``) totals that differ by more than a relative ``1e-6``
        (float64) / ``1e-4`` (float32).
    TypeError
        arrays from different libraries, complex or non-numeric input.
    """
    na, nb, nM = names
    xp = namespace(a, b, M)
    a_ = as_float(a, xp, name=na)
    b_ = None if b is None else as_float(b, xp, name=nb)
    M_ = None if M is None else as_float(M, xp, name=nM)
    dtype = float_dtype(xp, a_, b_, M_)
    a_ = _check_hist(a_, na, xp, dtype)
    if b_ is not None:
        b_ = _check_hist(b_, nb, xp, dtype)
        batch_shape(na, a_.shape[:-1], nb, b_.shape[:-1])
    if M_ is not None:
        m = None if b_ is None else b_.shape[-1]
        M_ = check_cost(M_, xp, name=nM, shape=(a_.shape[-1], m), dtype=dtype, nonneg=nonneg_cost)
    if check_mass and b_ is not None and not (is_lazy(a_) or is_lazy(b_)):
        sa = xp.sum(a_, axis=-1)
        sb = xp.sum(b_, axis=-1)
        diff = xp.abs(sa - sb)
        scale = xp.maximum(sa, sb)
        tol = mass_rtol(xp, dtype)
        if not _bool(xp.all(diff <= tol * scale)):
            bad = xp.argmax(xp.reshape(diff / scale, (-1,)))
            sa_f = xp.reshape(xp.broadcast_to(sa, diff.shape), (-1,))
            sb_f = xp.reshape(xp.broadcast_to(sb, diff.shape), (-1,))
            i = int(bad)
            where = "" if diff.ndim == 0 else f" (batch entry {i})"
            raise ValueError(
                f"{na} and {nb} must have the same total mass{where}: sum({na}) = "
                f"{float(sa_f[i]):.10g}, sum({nb}) = {float(sb_f[i]):.10g} (relative "
                f"tolerance {tol:g}); normalise both, e.g. a / a.sum(-1, keepdims=True)"
            )
    return xp, a_, b_, M_
