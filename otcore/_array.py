"""Array-namespace helpers: namespace, device, dtype and host transfer.

Everything in otcore is written once against the Python array API standard.
This module holds the few helpers the standard lacks, in one place (as
``scipy._lib._array_api`` does), and nothing else:

- :func:`namespace` -- the namespace of the inputs (``None`` and Python
  scalars ignored);
- :func:`float_dtype` / :func:`as_float` -- the floating dtype a computation
  runs in: float64 by default, float32 kept, integers and booleans promoted;
- :func:`to_host` / :func:`from_host` -- the one explicit transfer to numpy
  and back, used where scipy must run on the host (the exact LP);
- :func:`is_lazy` -- arrays whose values cannot be inspected (JAX tracers,
  dask), on which value checks are skipped;
- :func:`logsumexp` -- a max-shifted log-sum-exp along one axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import (
    array_namespace,
    device as _device,
    is_array_api_obj,
    is_cupy_namespace,
    is_dask_array,
    is_jax_array,
    is_numpy_namespace,
    is_torch_array,
)

__all__ = [
    "Array",
    "namespace",
    "device",
    "float_dtype",
    "as_float",
    "to_host",
    "from_host",
    "is_lazy",
    "is_numpy_namespace",
    "is_cupy_namespace",
    "logsumexp",
    "size",
]

Array = Any  # any array-API array (numpy, cupy, torch, jax, array_api_strict, ...)


def namespace(*arrays: Any):
    """The array-API namespace shared by ``arrays``.

    ``None`` and Python scalars are ignored; plain sequences are treated as
    numpy input. Raises ``TypeError`` when the arrays come from different
    libraries.
    """
    arrs = [x for x in arrays if x is not None and not isinstance(x, (int, float, bool, complex))]
    arrs = [np.asarray(x) if isinstance(x, (list, tuple)) else x for x in arrs]
    if not arrs:
        return array_namespace(np.empty(0))
    try:
        return array_namespace(*arrs)
    except TypeError as exc:
        kinds = sorted({type(x).__module__.split(".")[0] + "." + type(x).__name__ for x in arrs})
        raise TypeError(
            "all array arguments must come from the same array library; got "
            + ", ".join(kinds)
            + ". Convert them to one library (e.g. all numpy or all cupy) first."
        ) from exc


def device(x: Array):
    """The device ``x`` lives on (``array_api_compat.device``)."""
    return _device(x)


def _is_floating(xp, dtype) -> bool:
    return xp.isdtype(dtype, "real floating")


def float_dtype(xp, *arrays: Array):
    """The real floating dtype a computation on ``arrays`` runs in.

    The result type of the floating inputs; float64 when no input is floating
    (integers and booleans are promoted to float64, never to float32).
    Complex input raises ``TypeError``.
    """
    floats = []
    for x in arrays:
        if x is None:
            continue
        dt = x.dtype
        if xp.isdtype(dt, "complex floating"):
            raise TypeError("complex arrays are not supported; pass real masses and costs")
        if _is_floating(xp, dt):
            floats.append(dt)
    if not floats:
        return xp.float64
    return xp.result_type(*floats)


def as_float(x: Any, xp, dtype=None, *, name: str = "array", device=None) -> Array:
    """``x`` as an array of ``xp`` with a real floating dtype.

    Integer and boolean arrays become ``dtype`` (default float64); floating
    arrays keep their dtype unless ``dtype`` is given. Python scalars and
    sequences are accepted.
    """
    if not is_array_api_obj(x):
        try:
            x = xp.asarray(x, device=device) if device is not None else xp.asarray(x)
        except Exception as exc:  # pragma: no cover - message path
            raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}") from exc
    dt = x.dtype
    if xp.isdtype(dt, "complex floating"):
        raise TypeError(f"{name} is complex; pass real values")
    if not (xp.isdtype(dt, "numeric") or dt == xp.bool):
        raise TypeError(f"{name} must hold numbers, got dtype {dt}")
    if dtype is None:
        dtype = dt if _is_floating(xp, dt) else xp.float64
    if dt != dtype:
        x = xp.astype(x, dtype)
    return x


def to_host(x: Array) -> np.ndarray:
    """Copy ``x`` to a numpy array on the host (one explicit transfer).

    Works for numpy, cupy, torch (also with ``requires_grad``), JAX and any
    namespace that supports DLPack (``array_api_strict``).
    """
    if isinstance(x, np.ndarray):
        return x
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    get = getattr(x, "get", None)  # cupy
    if get is not None and type(x).__module__.startswith("cupy"):
        return get()
    if is_jax_array(x):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except Exception:
        return np.asarray(x)


def from_host(x: np.ndarray, xp, *, device=None, dtype=None) -> Array:
    """Move the numpy array ``x`` into namespace ``xp`` on ``device``."""
    if dtype is not None:
        x = np.asarray(x, dtype=_numpy_dtype(xp, dtype))
    if is_numpy_namespace(xp):
        return np.asarray(x)
    if device is None:
        return xp.asarray(x)
    return xp.asarray(x, device=device)


def _numpy_dtype(xp, dtype):
    if dtype == xp.float32:
        return np.float32
    if dtype == xp.float64:
        return np.float64
    if dtype == xp.int64:
        return np.int64
    if dtype == xp.bool:
        return np.bool_
    return np.dtype(str(dtype).split(".")[-1])


def is_lazy(x: Array) -> bool:
    """True for arrays whose values cannot be read now (JAX tracers, dask)."""
    if is_dask_array(x):
        return True
    if is_jax_array(x):
        import jax

        return isinstance(x, jax.core.Tracer)
    return False


def size(x: Array) -> int:
    """Number of elements of ``x`` (``x.size`` is ``None``-able in the standard)."""
    n = 1
    for s in x.shape:
        n *= int(s)
    return n


def logsumexp(x: Array, xp, axis: int = -1, keepdims: bool = False) -> Array:
    """``log(sum(exp(x), axis))`` shifted by the max, finite for finite input.

    Slices that are all ``-inf`` give ``-inf`` (never NaN).
    """
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out
