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
- :func:`size` (array-api-compat's) -- number of elements;
- :func:`is_lazy` -- arrays whose values cannot be inspected (JAX tracers,
  dask), on which value checks are skipped;
- small operations the standard lacks or makes slow: :func:`array0` (numpy
  scalars back to 0-d arrays), :func:`cumsum_last`, :func:`take_along_last`,
  :func:`scatter_add_2d` (dense matrix from index pairs, duplicates summed),
  :func:`clip_inplace`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import array_api_compat.numpy as _npx
from array_api_compat import (
    array_namespace,
    device as _device,
    is_array_api_obj,
    is_cupy_namespace,
    is_dask_array,
    is_jax_array,
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
    size,
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
    "size",
    "array0",
    "cumsum_last",
    "take_along_last",
    "scatter_add_2d",
    "clip_inplace",
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
    """The device ``x`` lives on (``array_api_compat.device``).

    ``None`` (the namespace's default device) where the library cannot say,
    e.g. for tracers of some libraries inside a compiled function.
    """
    try:
        return _device(x)
    except Exception:  # pragma: no cover - tracers of some libraries
        return None


def _is_floating(xp, dtype) -> bool:
    return xp.isdtype(dtype, "real floating")


def float_dtype(xp, *arrays: Array):
    """The real floating dtype a computation on ``arrays`` runs in.

    The result type of the floating inputs; float64 when no input is floating
    (integers and booleans are promoted to float64, never to float32).
    Complex input raises ``TypeError``.
    """
    floats = []
    f32, f64 = xp.float32, xp.float64
    for x in arrays:
        if x is None:
            continue
        dt = x.dtype
        if dt == f64 or dt == f32:  # the common case, without isdtype
            floats.append(dt)
            continue
        if xp.isdtype(dt, "complex floating"):
            raise TypeError("complex arrays are not supported; pass real masses and costs")
        if _is_floating(xp, dt):
            floats.append(dt)
    if not floats:
        return xp.float64
    if len(floats) == 1 or all(f == floats[0] for f in floats[1:]):
        return floats[0]
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
    if dtype is None and (dt == xp.float64 or dt == xp.float32):  # the common case
        return x
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

        # Inside jit every operation is staged, also on concrete (closed-over)
        # arrays, so values can be read only when no trace is active.
        return isinstance(x, jax.core.Tracer) or not _jax_trace_clean()
    return False


def _jax_trace_clean() -> bool:
    """Whether no JAX transformation (jit, vmap, grad...) is tracing right now."""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover - private API moved: assume tracing is possible
        return False
    return trace_state_clean()


def array0(x: Any, xp) -> Array:
    """``x`` as an array: numpy reductions give numpy scalars, otcore returns 0-d arrays.

    Arrays (of any namespace) are returned unchanged.

    >>> import numpy as np, array_api_compat.numpy as xp
    >>> array0(np.float64(1.5), xp)
    array(1.5)
    """
    if is_numpy_namespace(xp) and not isinstance(x, np.ndarray):
        return np.asarray(x)
    return x


def cumsum_last(x: Array, xp) -> Array:
    """Inclusive cumulative sum along the last axis (numpy called directly: no wrapper cost)."""
    if xp is _npx:
        return np.cumsum(x, axis=-1)
    return xp.cumulative_sum(x, axis=-1)


def take_along_last(x: Array, idx: Array, xp) -> Array:
    """``take_along_axis(x, idx, axis=-1)`` for ``x`` and ``idx`` with the same batch shape.

    Uses the namespace's own ``take_along_axis`` where it has one; otherwise
    (array API 2023.12) flattens the batch and offsets the indices.
    """
    f = getattr(xp, "take_along_axis", None)
    if f is not None:
        return f(x, idx, axis=-1)
    n = x.shape[-1]
    k = idx.shape[-1]
    lead = tuple(x.shape[:-1])
    B = math.prod(lead)
    off = xp.reshape(xp.arange(B, dtype=idx.dtype, device=device(idx)) * n, (B, 1))
    flat = xp.reshape(xp.reshape(idx, (B, k)) + off, (-1,))
    return xp.reshape(xp.take(xp.reshape(x, (-1,)), flat), lead + (k,))


def scatter_add_2d(xp, rows: Array, cols: Array, vals: Array, n: int, m: int, *, dtype, device=None) -> Array:
    """Dense ``(n, m)`` matrix with ``vals`` added at ``(rows, cols)`` (duplicates summed).

    The array-API standard has no scatter-add; this uses each library's own
    (``bincount`` on numpy/cupy, ``index_put_`` on torch, ``.at[].add`` on
    JAX) and builds on the host for any other namespace.

    >>> import numpy as np, array_api_compat.numpy as xp
    >>> scatter_add_2d(xp, np.array([0, 0, 1]), np.array([1, 1, 0]), np.ones(3), 2, 2, dtype=xp.float64)
    array([[0., 2.],
           [1., 0.]])
    """
    if is_numpy_namespace(xp) or is_cupy_namespace(xp):
        mod = __import__("cupy") if is_cupy_namespace(xp) else np
        lin = rows.astype(mod.int64) * m + cols.astype(mod.int64)
        flat = mod.bincount(lin, weights=vals, minlength=n * m)
        return xp.reshape(xp.astype(flat, dtype), (n, m))
    if is_torch_namespace(xp):
        import torch

        P = xp.zeros((n, m), dtype=dtype, device=device)
        return P.index_put_((rows.to(torch.int64), cols.to(torch.int64)), vals.to(dtype), accumulate=True)
    if is_jax_namespace(xp):
        P = xp.zeros((n, m), dtype=dtype, device=device)
        return P.at[rows, cols].add(vals)
    r, c, v = to_host(rows).astype(np.int64), to_host(cols).astype(np.int64), to_host(vals)
    flat = np.bincount(r * m + c, weights=v, minlength=n * m)
    return from_host(flat.reshape(n, m), xp, device=device, dtype=dtype)


def clip_inplace(x: Array, xp, lo: float, hi: float | None = None) -> Array:
    """``clip(x, lo, hi)``, in place where the namespace allows (no second array).

    JAX arrays are immutable: a clipped copy is returned there. Use only on
    arrays the caller owns (freshly computed), never on user input.
    """
    if is_jax_namespace(xp):
        return xp.clip(x, min=lo, max=hi)
    x[x < lo] = lo
    if hi is not None:
        x[x > hi] = hi
    return x
