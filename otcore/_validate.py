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

Cost of the checks. Every value check reads its array once on the device and
brings back a few numbers in one transfer (minimum, maximum and, for
histograms, the smallest total), so a check costs one synchronisation per
array on GPUs; tensors that require grad are read without touching autograd.
:func:`check_histograms` has a fast accept path for plain numpy float input
(a handful of numpy reductions, no array-API wrapping); anything it does not
accept -- every invalid input included -- takes the full path, so results and
messages are the same either way.
"""

from __future__ import annotations

import math
import sys
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

import array_api_compat.numpy as _npx
from array_api_compat import is_jax_array, is_torch_array

from otcore._array import Array, as_float, device as device_of, float_dtype, is_lazy, is_numpy_namespace, namespace, size, to_host

__all__ = [
    "ConvergenceWarning",
    "check_choice",
    "check_scalar",
    "check_int",
    "check_values",
    "check_cost",
    "check_histograms",
    "mass_tolerance",
    "scan_masses",
    "check_equal_totals",
    "batch_shape",
    "check_power",
    "check_index",
    "check_float_dtype",
    "reject_pot_keywords",
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
        # 0-d real arrays of any namespace are accepted (read through to_host: no
        # autograd warning for torch tensors that require grad)
        if getattr(value, "shape", None) != () or isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if is_lazy(value):
            raise TypeError(
                f"{name} must be a concrete number, got a traced/lazy 0-d array; inside "
                f"jax.jit pass {name} as a static argument (or a Python float)"
            )
        host = to_host(value)
        if host.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        value = host
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


def _plain(x):
    """``x`` detached from autograd (torch tensors that require grad); else ``x``."""
    if is_torch_array(x) and x.requires_grad:
        return x.detach()
    return x


def _on_accelerator(x) -> bool:
    """Whether ``x`` lives on a GPU (or another non-CPU device)."""
    if is_torch_array(x):
        return x.device.type != "cpu"
    if type(x).__module__.startswith("cupy"):
        return True
    if is_jax_array(x):
        try:
            return any(d.platform != "cpu" for d in x.devices())
        except Exception:  # pragma: no cover
            return True
    return False


def _host_floats(xp, *scalars) -> list[float]:
    """0-d arrays of ``xp`` as Python floats: one device-to-host transfer on GPUs."""
    if len(scalars) > 1 and _on_accelerator(scalars[0]):
        return [float(v) for v in to_host(_plain(xp.stack(list(scalars))))]
    return [float(to_host(_plain(v))) if is_torch_array(v) else float(v) for v in scalars]


def _min_max(x, xp, extra=None) -> list[float]:
    """``[min(x), max(x)]`` (+ ``min(extra)``) as floats, NaN propagating (one transfer on GPUs)."""
    if type(x) is np.ndarray:
        out = [float(x.min()), float(x.max())]
        if extra is not None:
            out.append(float(extra.min()))
        return out
    x = _plain(x)
    vals = [xp.min(x), xp.max(x)]
    if extra is not None:
        vals.append(xp.astype(xp.min(_plain(extra)), x.dtype))
    return _host_floats(xp, *vals)


def _scan(x, xp):
    """``(totals, min, max, min total)`` of histograms ``x``: the one value scan.

    NaN propagates into min and max (inf into one of them), so finite min and
    max mean finite entries; one transfer on GPUs, autograd untouched.
    """
    totals = x.sum(axis=-1) if type(x) is np.ndarray else xp.sum(_plain(x), axis=-1)
    mn, mx, tmin = _min_max(x, xp, extra=totals)
    return totals, mn, mx, tmin


def _raise_values(mn: float, mx: float, name: str, nonneg: bool, what: str) -> None:
    # NaN propagates through min and max (array API standard), so finite min and
    # max mean every entry is finite
    if not (math.isfinite(mn) and math.isfinite(mx)):
        raise ValueError(f"{name} contains NaN or infinite {what}; all {what} must be finite")
    if nonneg and mn < 0:
        raise ValueError(f"{name} has negative {what} (min {mn:g}); {what} must be >= 0")


def check_values(x: Array, name: str, xp, *, nonneg: bool = True, what: str = "entries") -> None:
    """Raise if ``x`` holds NaN/inf or (``nonneg``) negative values.

    Skipped for lazy arrays (JAX tracers, dask) and empty arrays. Reads the
    minimum and maximum (one transfer on GPUs); never touches autograd.
    """
    if is_lazy(x) or size(x) == 0:
        return
    mn, mx = _min_max(x, xp)
    _raise_values(mn, mx, name, nonneg, what)


def mass_tolerance(dtype) -> float:
    """The one relative tolerance on equal total masses, per dtype.

    Two totals ``s, t`` are equal when ``|s - t| <= tol * max(s, t)``, with
    ``tol = 1e-6`` for float64, ``1e-4`` for float32 and ``1e-2`` for
    float16/bfloat16 (masses rounded to 11 or 8 significant bits cannot agree
    more closely; the computation itself runs in float32). Every mass check of
    the library (histograms, pairwise batches, the command line, the adapters)
    uses it.

    >>> import numpy as np
    >>> mass_tolerance(np.float64), mass_tolerance(np.dtype("float32")), mass_tolerance(np.float16)
    (1e-06, 0.0001, 0.01)
    """
    name = str(dtype)
    try:
        name = np.dtype(dtype).name
    except TypeError:  # torch / jax / array_api_strict dtypes
        pass
    if "float64" in name:
        return 1e-6
    if "float16" in name:  # float16 and bfloat16
        return 1e-2
    return 1e-4


def _row_locator(name: str, ndim: int):
    """Default position of histogram ``i`` (flat batch index) in messages."""
    if ndim <= 1:
        return lambda i: name
    return lambda i: f"{name} row {i}"


def scan_masses(x, name: str, xp=None, *, locate=None, what: str = "masses", hint: str = ""):
    """One scan of histograms ``x`` (bins on the last axis): finite, >= 0, positive totals.

    The single finite / non-negative / non-empty check of the library. It
    reads the minimum, maximum and smallest total (one transfer on GPUs,
    autograd untouched) and only on failure searches the host copy for the
    first bad entry, so that the message can say where it is.

    Parameters
    ----------
    x : array, shape (..., n)
        Histograms; leading axes are a batch (flattened in row-major order for
        ``locate``).
    name : str
        Argument name used in messages.
    xp : namespace, optional
        Namespace of ``x`` (default: inferred).
    locate : callable, optional
        ``locate(i) -> str`` names histogram ``i`` (flat batch index) in
        messages, e.g. ``lambda i: f"{path}:{line[i]}"`` for a file or
        ``lambda i: "pred"`` for a loss; default ``"{name} row {i}"`` (2-D and
        more) or ``name`` (1-D).
    what : str
        Noun for the entries ("masses", "weights").
    hint : str
        Appended to the negative-entry message, e.g. ``" (apply a softmax to
        raw scores first)"``.

    Returns
    -------
    totals : numpy.ndarray of float64, shape batch, or None
        Totals per histogram on the host; ``None`` for lazy (traced) or empty
        input, whose values are not read.

    Examples
    --------
    >>> import numpy as np
    >>> scan_masses(np.array([[0.5, 0.5], [0.2, 0.2]]), "A")
    array([1. , 0.4])
    >>> scan_masses(np.array([[0.5, 0.5], [0.2, -0.1]]), "A")
    Traceback (most recent call last):
    ...
    ValueError: A row 1, bin 1 has negative mass -0.1; masses must be >= 0
    >>> scan_masses(np.array([[1.0, np.nan]]), "pred", locate=lambda i: f"pred (sample {i})")
    Traceback (most recent call last):
    ...
    ValueError: pred (sample 0), bin 1 is nan; masses must be finite numbers
    """
    xp = namespace(x) if xp is None else xp
    if is_lazy(x) or size(x) == 0:
        return None
    if x.ndim == 0:
        raise ValueError(f"{name} must be a histogram with bins on its last axis, got a scalar")
    totals, mn, mx, tmin = _scan(x, xp)
    if math.isfinite(mn) and math.isfinite(mx) and mn >= 0 and tmin > 0 and math.isfinite(tmin):
        return np.asarray(to_host(_plain(totals)), dtype=np.float64)
    where = locate if locate is not None else _row_locator(name, x.ndim)
    X = np.asarray(to_host(_plain(x)))
    flat = X.reshape(-1, X.shape[-1])
    bad = ~np.isfinite(flat)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{where(int(i))}, bin {j} is {flat[i, j]}; {what} must be finite numbers")
    if (flat < 0).any():
        i, j = np.argwhere(flat < 0)[0]
        raise ValueError(
            f"{where(int(i))}, bin {j} has negative mass {flat[i, j]:g}; {what} must be >= 0{hint}"
        )
    tot = flat.sum(axis=-1)
    if not np.all(np.isfinite(tot)):
        i = int(np.argmax(~np.isfinite(tot)))
        raise ValueError(f"{where(i)} sums to inf (overflow); rescale the {what}")
    i = int(np.argmax(tot <= 0))
    if x.ndim == 1:
        raise ValueError(f"{name} has an all-zero histogram; every histogram needs positive total mass")
    raise ValueError(f"{where(i)} is all zero; every histogram needs positive total mass")


def check_equal_totals(sa, sb=None, *, tol: float, names=("A", "B"), locate=None, hint: str | None = None) -> None:
    """All totals of ``sa`` (and ``sb``) equal under the one mass rule.

    ``|s - t| <= tol * max(s, t)`` for every pair, i.e. for the smallest and
    the largest total. ``sa``, ``sb``: host totals from :func:`scan_masses`
    (``None``: not checked). ``locate(side, i) -> str`` names total ``i`` of
    side 0 (``sa``) or 1 (``sb``); default ``"{name} row {i}"``. ``hint``
    replaces the default fix ("normalise the rows ...").

    >>> import numpy as np
    >>> check_equal_totals(np.array([1.0, 1.0]), np.array([1.0, 2.0]), tol=1e-6)
    Traceback (most recent call last):
    ...
    ValueError: all histograms must have the same total mass: A row 0 sums to 1 but B row 1 sums to 2 (relative tolerance 1e-06); normalise the rows, e.g. A / A.sum(1, keepdims=True)
    """
    if sa is None:
        return
    parts = [(0, np.ravel(sa))] + ([] if sb is None else [(1, np.ravel(sb))])
    lo = min(((float(t.min()), side, int(t.argmin())) for side, t in parts), key=lambda v: v[0])
    hi = max(((float(t.max()), side, int(t.argmax())) for side, t in parts), key=lambda v: v[0])
    if hi[0] - lo[0] <= tol * hi[0]:
        return
    where = locate if locate is not None else (lambda side, i: f"{names[side]} row {i}")
    first, second = sorted([lo, hi], key=lambda v: (v[1], v[2]))
    fix = hint or f"normalise the rows, e.g. {names[0]} / {names[0]}.sum(1, keepdims=True)"
    raise ValueError(
        f"all histograms must have the same total mass: {where(first[1], first[2])} sums to "
        f"{first[0]:.10g} but {where(second[1], second[2])} sums to {second[0]:.10g} "
        f"(relative tolerance {tol:g}); {fix}"
    )


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


def _check_hist(x, name: str, xp, dtype):
    """``(x, totals)``: ``x`` converted and checked, its totals per histogram
    (``None`` for lazy or empty-batch input, whose values are not read)."""
    x = as_float(x, xp, dtype, name=name)
    if x.ndim == 0:
        raise ValueError(f"{name} must be a histogram with bins on its last axis, got a scalar")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} is empty; a histogram needs at least one bin")
    if is_lazy(x) or size(x) == 0:
        return x, None
    totals, mn, mx, tmin = _scan(x, xp)
    _raise_values(mn, mx, name, True, "masses")
    if not tmin > 0:
        raise ValueError(f"{name} has an all-zero histogram; every histogram needs positive total mass")
    return x, totals


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_F64 = np.dtype(np.float64)


def _fast_totals(x: np.ndarray, margin: float):
    """Totals of the non-negative histograms ``x`` (last axis) and their relative accuracy.

    A batch is summed by one matrix-vector product (BLAS, 2-3x faster than
    ``sum(axis=-1)``); its totals differ from the full path's pairwise sums by
    at most ``~n eps`` relatively, which the caller absorbs in ``margin``.
    One histogram, or a margin that would eat the tolerance, gives the exact
    sums of the full path (margin 0).
    """
    if x.ndim == 1:
        return x.sum(), 0.0
    if margin:
        return x @ np.ones(x.shape[-1], dtype=x.dtype), margin
    return x.sum(axis=-1), 0.0


def _cpu_views(a, b, M):
    """Zero-copy numpy views of torch CPU tensors ``a``, ``b``, ``M`` (``None`` kept), or None."""
    torch = sys.modules.get("torch")
    if torch is None or type(a) is not torch.Tensor:
        return None
    out = []
    for x in (a, b, M):
        if x is None:
            out.append(None)
        elif type(x) is torch.Tensor and x.device.type == "cpu" and x.layout == torch.strided:
            try:
                out.append(x.detach().numpy())
            except (RuntimeError, TypeError):  # conjugate/negative views, dtypes numpy lacks
                return None
        else:
            return None
    return out


def _fast_accept(a, b, M, check_mass: bool, nonneg_cost: bool) -> bool:
    """True when plain numpy float inputs pass every check of :func:`check_histograms`.

    Only accepts: it decides nothing else. Whatever it does not accept (other
    namespaces, mixed dtypes, odd shapes, any invalid value, totals near the
    mass tolerance) goes through the full checks, which give the same result
    and the library's messages.
    """
    dt = a.dtype
    if not (dt in _FLOATS and a.ndim >= 1 and a.size > 0):
        return False
    n = a.shape[-1]
    if b is not None and not (type(b) is np.ndarray and b.dtype == dt and b.ndim >= 1 and b.size > 0):
        return False
    if M is not None and not (
        type(M) is np.ndarray
        and M.dtype == dt
        and M.ndim == 2
        and M.shape[0] == n
        and (b is None or M.shape[1] == b.shape[-1])
        and M.size > 0
    ):
        return False
    tol = mass_tolerance(dt)
    if b is not None and (a.ndim != b.ndim or a.shape[:-1] != b.shape[:-1]):
        try:
            np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        except ValueError:
            return False
    if a.ndim == 1 and (b is None or b.ndim == 1):
        # one pair: Python floats, without numpy scalar overhead. In float64 they
        # are the full path's arithmetic exactly; float32 totals are exact in
        # double and a relative 1e-6 below the tolerance covers the full path's
        # float32 rounding of the difference and of tol * scale
        if dt != _F64:
            tol = tol * (1.0 - 1e-6)
        if not a.min() >= 0:  # False for NaN
            return False
        sa = float(a.sum())
        if not 0.0 < sa < math.inf:  # no negatives: a finite total means finite masses
            return False
        if b is not None:
            if not b.min() >= 0:
                return False
            sb = float(b.sum())
            if not 0.0 < sb < math.inf:
                return False
            if check_mass and not abs(sa - sb) <= tol * max(sa, sb):
                return False
    else:
        # batched totals by BLAS: accept only with a margin of 4 (n + 1) eps
        # below the tolerance and far from overflow, where both summation
        # orders must agree with the full path's verdict
        margin = 4.0 * (max(n, b.shape[-1] if b is not None else 0) + 1) * float(np.finfo(dt).eps)
        if margin * 2 > tol:
            margin = 0.0
        big = float(np.finfo(dt).max) / 2
        if not a.min() >= 0:
            return False
        sa, ma = _fast_totals(a, margin)
        if not (sa.max() < big and sa.min() > 0):
            return False
        if b is not None:
            if not b.min() >= 0:
                return False
            sb, mb = _fast_totals(b, margin)
            if not (sb.max() < big and sb.min() > 0):
                return False
            if check_mass:
                rtol = tol - max(ma, mb)
                if not (np.abs(sa - sb) <= rtol * np.maximum(sa, sb)).all():
                    return False
    if M is not None:
        mn, mx = M.min(), M.max()
        if not (mx < math.inf and (mn >= 0 if nonneg_cost else mn > -math.inf)):
            return False
    return True


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
    float32; integers promoted). ``b`` and ``M`` may be ``None``. Arrays that
    already have that dtype are returned as they are (no copy).

    Raises
    ------
    ValueError
        empty or all-zero histograms, NaN/inf/negative masses or costs, a cost
        of the wrong shape or not 2-D, batch shapes that do not broadcast, or
        (``check_mass``) totals that differ by more than a relative ``1e-6``
        (float64) / ``1e-4`` (float32).
    TypeError
        arrays from different libraries, complex or non-numeric input.

    Notes
    -----
    As in POT, ``a`` or ``b`` given as ``None`` or as an empty list (when ``M``
    is given) means uniform weights: ``1 / n`` on each of the ``n`` bins of
    that side of ``M``, in ``M``'s namespace and dtype.

    Value checks are skipped for lazy arrays (JAX tracers inside ``jit``,
    dask): only shapes and dtypes are checked there. Plain numpy float input
    of one dtype takes a fast accept path (a few numpy reductions); anything
    else, and every invalid input, takes the full path.

    Examples
    --------
    >>> import numpy as np
    >>> xp, a, b, M = check_histograms(np.array([0.5, 0.5]), np.array([1, 0]), np.ones((2, 2)))
    >>> b.dtype
    dtype('float64')
    >>> check_histograms(np.array([0.5, 0.5]), np.array([0.5, 0.6]))
    Traceback (most recent call last):
    ...
    ValueError: a and b must have the same total mass: sum(a) = 1, sum(b) = 1.1 (relative tolerance 1e-06); normalise both, e.g. a / a.sum(-1, keepdims=True)
    """
    if M is not None:
        a, b = _uniform_if_missing(a, b, M)
    if type(a) is np.ndarray and _fast_accept(a, b, M, check_mass, nonneg_cost):
        return _npx, a, b, M
    views = _cpu_views(a, b, M)  # torch CPU tensors: the same checks on their numpy views
    if views is not None and _fast_accept(*views, check_mass, nonneg_cost):
        return namespace(a, b, M), a, b, M
    na, nb, nM = names
    xp = namespace(a, b, M)
    a_ = as_float(a, xp, name=na)
    b_ = None if b is None else as_float(b, xp, name=nb)
    M_ = None if M is None else as_float(M, xp, name=nM)
    dtype = float_dtype(xp, a_, b_, M_)
    a_, sa = _check_hist(a_, na, xp, dtype)
    sb = None
    if b_ is not None:
        b_, sb = _check_hist(b_, nb, xp, dtype)
        batch_shape(na, a_.shape[:-1], nb, b_.shape[:-1])
    if M_ is not None:
        m = None if b_ is None else b_.shape[-1]
        M_ = check_cost(M_, xp, name=nM, shape=(a_.shape[-1], m), dtype=dtype, nonneg=nonneg_cost)
    if check_mass and sa is not None and sb is not None:
        diff = xp.abs(sa - sb)
        scale = xp.maximum(sa, sb)
        tol = mass_tolerance(dtype)
        if not bool(xp.all(diff <= tol * scale)):
            bad = xp.argmax(xp.reshape(diff / scale, (-1,)))
            sa_f = xp.reshape(xp.broadcast_to(sa, diff.shape), (-1,))
            sb_f = xp.reshape(xp.broadcast_to(sb, diff.shape), (-1,))
            i = int(bad)
            where = "" if diff.ndim == 0 else f" (batch entry {i})"
            va, vb = _host_floats(xp, sa_f[i], sb_f[i])
            raise ValueError(
                f"{na} and {nb} must have the same total mass{where}: sum({na}) = "
                f"{va:.10g}, sum({nb}) = {vb:.10g} (relative "
                f"tolerance {tol:g}); normalise both, e.g. a / a.sum(-1, keepdims=True)"
            )
    return xp, a_, b_, M_


def _is_missing(x) -> bool:
    """``None`` or an empty Python sequence (POT's spelling of "uniform")."""
    return x is None or (isinstance(x, (list, tuple)) and len(x) == 0)


def _uniform_if_missing(a, b, M):
    """Replace a missing ``a`` / ``b`` by uniform weights over ``M``'s rows / columns."""
    if not (_is_missing(a) or _is_missing(b)):
        return a, b
    xp = namespace(M)
    M_ = as_float(M, xp, name="M")
    if M_.ndim != 2:
        return a, b  # check_cost reports the shape
    n, m = M_.shape
    dev = device_of(M_)
    if _is_missing(a):
        a = xp.full((n,), 1.0 / max(n, 1), dtype=M_.dtype, device=dev)
    if _is_missing(b):
        b = xp.full((m,), 1.0 / max(m, 1), dtype=M_.dtype, device=dev)
    return a, b


# POT keyword -> what to use in otcore instead.
_POT_KEYWORDS = {
    "numItermax": "use n_iter (the iteration cap) instead",
    "numIterMax": "use n_iter (the iteration cap) instead",
    "stopThr": "use tol (the marginal-error tolerance) instead",
    "log": "drop it: otcore always returns a result record whose fields (f, g, n_iter, "
    "converged, marginal_error, ...) hold what POT's log dict holds",
    "warmstart": "use init=(f, g), the dual potentials to start from, instead",
    "verbose": "drop it: otcore prints nothing; read converged, n_iter and marginal_error "
    "from the result",
    "numThreads": "drop it: otcore sets no thread counts (use threadpoolctl around the call)",
    "center_dual": "drop it: the potentials are returned as documented",
    "check_marginals": "drop it: masses are always checked",
}


def reject_pot_keywords(func: str, kwargs: dict, *, extra: dict | None = None) -> None:
    """Raise a ``TypeError`` for unexpected keywords, naming otcore's equivalent.

    ``kwargs`` are the keywords a public function did not recognise (its
    ``**kwargs``); POT's names (``numItermax``, ``stopThr``, ``log``,
    ``warmstart``, ``verbose``...) get a pointer to the otcore argument or
    result field that replaces them, anything else the usual message.

    >>> reject_pot_keywords("sinkhorn", {"numItermax": 10})
    Traceback (most recent call last):
    ...
    TypeError: sinkhorn() got POT's keyword 'numItermax': use n_iter (the iteration cap) instead
    """
    table = dict(_POT_KEYWORDS, **(extra or {}))
    for key in kwargs:
        if key in table:
            raise TypeError(f"{func}() got POT's keyword {key!r}: {table[key]}")
        raise TypeError(f"{func}() got an unexpected keyword argument {key!r}")


# --------------------------------------------------------------------------- small checks


_POWER_REASON = (
    "the cost |.|^{name} is only a convex transport cost (and the closed forms only "
    "exact) for exponents >= 1"
)


def check_power(name: str, value, *, allow_inf: bool = False, reason: str | None = None) -> float:
    """An exponent of a transport cost ``|x - y|^value``: a real number >= 1.

    ``allow_inf`` also accepts ``+inf`` (e.g. the Minkowski order of the
    Chebyshev distance); NaN and ``-inf`` are always rejected. ``reason``
    replaces the explanation after ``"{name} must be >= 1, got ...; "``.

    >>> check_power("p", 2)
    2.0
    >>> check_power("rho", 0.5)
    Traceback (most recent call last):
    ...
    ValueError: rho must be >= 1, got 0.5; the cost |.|^rho is only a convex transport cost (and the closed forms only exact) for exponents >= 1
    """
    if (
        allow_inf
        and isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isinf(value)
        and value > 0
    ):
        return math.inf
    value = check_scalar(name, value)
    if value < 1:
        why = _POWER_REASON.format(name=name) if reason is None else reason
        raise ValueError(f"{name} must be >= 1, got {value:g}; {why}")
    return value


def check_index(v, name: str, xp, upper: int, upper_name: str) -> Array:
    """A 1-D (or batched) integer index array with entries in ``[0, upper)``.

    Sequences become arrays of ``xp``; the range is checked on concrete
    arrays only (lazy ones are returned unchecked).

    >>> import numpy as np, array_api_compat.numpy as xp
    >>> check_index([0, 2], "rows", xp, 2, "n")
    Traceback (most recent call last):
    ...
    ValueError: rows has indices outside [0, 2) (min 0, max 2); they must be valid indices below n = 2
    """
    if not (hasattr(v, "dtype") and hasattr(v, "shape")):
        v = xp.asarray(np.asarray(v)) if is_numpy_namespace(xp) else xp.asarray(v)
    if v.ndim == 0:
        raise ValueError(f"{name} must be a 1-D array of indices, got a scalar")
    if v.shape[-1] == 0:
        raise ValueError(f"{name} is empty; pass at least one index")
    if not xp.isdtype(v.dtype, "integral"):
        raise TypeError(f"{name} must hold integer indices, got dtype {v.dtype}")
    if not is_lazy(v):
        lo, hi = (int(t) for t in to_host(xp.stack([xp.min(v), xp.max(v)])))
        if lo < 0 or hi >= upper:
            raise ValueError(
                f"{name} has indices outside [0, {upper}) (min {lo}, max {hi}); "
                f"they must be valid indices below {upper_name} = {upper}"
            )
    return v


def check_float_dtype(xp, dtype, name: str = "dtype"):
    """``dtype`` if it is ``xp.float32`` or ``xp.float64``; ``None`` gives ``xp.float64``."""
    if dtype is None:
        return xp.float64
    if dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name} must be float32 or float64 of the namespace, got {dtype!r}")
    return dtype
