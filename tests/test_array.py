"""Tests of otcore._array: namespaces, dtypes, host transfer and the small ops.

References: numpy itself (round trips), dense
loops for the scatter-add and ``numpy.take_along_axis``.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import otcore._array as A
from otcore._array import (
    array0,
    as_float,
    clip_inplace,
    cumsum_last,
    float_dtype,
    from_host,
    is_lazy,
    namespace,
    scatter_add_2d,
    size,
    take_along_last,
    to_host,
)
from tests._helpers import asxp, assert_namespace, xp_assert_close


# --------------------------------------------------------------------------- namespace


def test_namespace_numpy_and_ignored_arguments():
    xp = namespace(np.ones(2), None, 3.0, 2, True)
    assert xp.__name__ == "array_api_compat.numpy"
    assert namespace([1.0, 2.0]).__name__ == "array_api_compat.numpy"  # sequences are numpy
    assert namespace().__name__ == "array_api_compat.numpy"  # nothing: numpy
    assert namespace(None, 1.0).__name__ == "array_api_compat.numpy"


def test_namespace_of_each_backend(xp):
    x = asxp(xp, np.ones(3))
    assert namespace(x, None, 2.0).__name__.split(".")[-1] == xp.__name__.split(".")[-1]


def test_namespace_mixed_libraries_message():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same array library") as info:
        namespace(np.ones(2), torch.ones(2))
    msg = str(info.value)
    assert "numpy.ndarray" in msg and "torch.Tensor" in msg
    assert "Convert them to one library" in msg


def test_namespace_mixed_strict_and_numpy():
    xs = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match="same array library.*array_api_strict"):
        namespace(np.ones(2), xs.ones(2))


# --------------------------------------------------------------------------- dtypes


def test_float_dtype_rules(xp):
    i = xp.asarray([1, 2])
    bo = xp.asarray([True, False])
    f32 = xp.asarray([1.0], dtype=xp.float32)
    f64 = xp.asarray([1.0], dtype=xp.float64)
    assert float_dtype(xp, i) == xp.float64  # integers -> float64, never float32
    assert float_dtype(xp, bo) == xp.float64
    assert float_dtype(xp, i, bo, None) == xp.float64
    assert float_dtype(xp) == xp.float64
    assert float_dtype(xp, f32) == xp.float32  # float32 kept
    assert float_dtype(xp, f32, f32, None) == xp.float32
    assert float_dtype(xp, f32, i) == xp.float32  # integers do not widen float32
    assert float_dtype(xp, f32, f64) == xp.float64  # mixed floats -> float64
    assert float_dtype(xp, f64, f32, i) == xp.float64


def test_float_dtype_complex_raises():
    with pytest.raises(TypeError, match="complex arrays are not supported"):
        float_dtype(A.namespace(np.ones(1)), np.ones(2), np.ones(2) + 1j)


def test_as_float(xp):
    x = as_float(xp.asarray([1, 2]), xp)
    assert x.dtype == xp.float64
    f32 = xp.asarray([1.0], dtype=xp.float32)
    assert as_float(f32, xp) is f32  # no copy, float32 kept
    assert as_float(f32, xp, xp.float64).dtype == xp.float64
    assert as_float(xp.asarray([True]), xp, xp.float32).dtype == xp.float32
    y = as_float([1, 2, 3], xp)
    assert_namespace(y, xp)
    assert y.dtype == xp.float64


def test_as_float_numpy_scalars_and_lists():
    import array_api_compat.numpy as npx

    assert as_float(3, npx).dtype == np.float64
    assert as_float([[1, 0]], npx).shape == (1, 2)


def test_as_float_errors():
    import array_api_compat.numpy as npx

    with pytest.raises(TypeError, match="w is complex; pass real values"):
        as_float(np.ones(2) + 1j, npx, name="w")
    with pytest.raises(TypeError, match="w must hold numbers"):
        as_float(np.array(["a"]), npx, name="w")


# --------------------------------------------------------------------------- host transfer


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_host_round_trip(xp, dtype):
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    y = asxp(xp, x, dtype=getattr(xp, dtype))
    h = to_host(y)
    assert isinstance(h, np.ndarray)
    np.testing.assert_array_equal(h, x)
    assert h.dtype == x.dtype
    back = from_host(h, xp, device=A.device(y))
    assert_namespace(back, xp)
    assert back.dtype == getattr(xp, dtype)
    np.testing.assert_array_equal(to_host(back), x)
    # the dtype argument converts on the host first
    conv = from_host(h, xp, dtype=xp.float32)
    assert conv.dtype == xp.float32


def test_to_host_numpy_is_identity():
    x = np.ones(3)
    assert to_host(x) is x


def test_host_round_trip_torch_requires_grad():
    torch = pytest.importorskip("torch")
    t = torch.arange(4.0, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = to_host(t)
    np.testing.assert_array_equal(h, [0.0, 1.0, 2.0, 3.0])
    import array_api_compat.torch as txp

    back = from_host(h, txp, device=t.device)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float64


def test_host_round_trip_jax():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.arange(5.0)
    h = to_host(x)
    assert isinstance(h, np.ndarray)
    np.testing.assert_array_equal(h, np.arange(5.0))
    back = from_host(h, namespace(x))
    np.testing.assert_array_equal(np.asarray(back), h)


def test_device_and_size(xp):
    x = asxp(xp, np.ones((2, 3, 4)))
    assert size(x) == 24
    assert size(asxp(xp, np.ones((0, 3)))) == 0
    assert A.device(x) is not None


# --------------------------------------------------------------------------- laziness


def test_is_lazy_jax_tracer():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    assert not is_lazy(jnp.ones(2))
    seen = []

    @jax.jit
    def f(x):
        seen.append(is_lazy(x))
        return x

    f(jnp.ones(2))
    assert seen == [True]


def test_is_lazy_dask_and_eager():
    da = pytest.importorskip("dask.array")
    assert is_lazy(da.ones(3))
    assert not is_lazy(np.ones(3))


# --------------------------------------------------------------------------- small ops


def test_array0():
    import array_api_compat.numpy as npx

    r = array0(np.float64(2.0), npx)
    assert isinstance(r, np.ndarray) and r.shape == () and float(r) == 2.0
    x = np.ones(2)
    assert array0(x, npx) is x


def test_array0_other_namespaces_unchanged(xp):
    x = asxp(xp, np.ones(()))
    assert array0(x, xp) is x


def test_cumsum_last(xp):
    x = np.arange(12.0).reshape(3, 4)
    xp_assert_close(cumsum_last(asxp(xp, x), xp), np.cumsum(x, axis=-1), xp=xp, rtol=0)


@pytest.mark.parametrize("shape", [(7,), (3, 7), (2, 3, 7)])
def test_take_along_last(xp, shape, rng):
    x = rng.random(shape)
    idx = np.argsort(rng.random(shape[:-1] + (5,)), axis=-1)
    got = take_along_last(asxp(xp, x), asxp(xp, idx), xp)
    xp_assert_close(got, np.take_along_axis(x, idx, axis=-1), xp=xp, rtol=0)


def test_take_along_last_fallback(rng):
    """The array-API 2023.12 fallback (no take_along_axis in the namespace)."""
    import types

    import array_api_compat.numpy as npx

    bare = types.SimpleNamespace(**{k: getattr(npx, k) for k in ("reshape", "arange", "take")})
    x = rng.random((2, 3, 6))
    idx = rng.integers(0, 6, size=(2, 3, 4))
    got = take_along_last(x, idx, bare)
    np.testing.assert_array_equal(got, np.take_along_axis(x, idx, axis=-1))


def _dense_scatter(rows, cols, vals, n, m):
    out = np.zeros((n, m))
    for r, c, v in zip(rows, cols, vals):
        out[r, c] += v
    return out


def test_scatter_add_2d(xp, rng):
    rows = rng.integers(0, 4, size=12)
    cols = rng.integers(0, 3, size=12)
    vals = rng.random(12)
    got = scatter_add_2d(
        xp, asxp(xp, rows), asxp(xp, cols), asxp(xp, vals), 4, 3, dtype=xp.float64, device=None
    )
    xp_assert_close(got, _dense_scatter(rows, cols, vals, 4, 3), xp=xp, rtol=1e-14, dtype=xp.float64)


def test_scatter_add_2d_jax(rng):
    jnp = pytest.importorskip("jax.numpy")
    xp = namespace(jnp.ones(1))
    rows, cols, vals = np.array([0, 0, 2]), np.array([1, 1, 0]), np.array([0.5, 0.25, 1.0])
    got = scatter_add_2d(xp, jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(vals), 3, 2, dtype=jnp.float32)
    np.testing.assert_allclose(np.asarray(got), _dense_scatter(rows, cols, vals, 3, 2))


def test_clip_inplace(xp):
    x = asxp(xp, np.array([-1.0, 0.5, 3.0]))
    out = clip_inplace(x, xp, 0.0, 2.0)
    xp_assert_close(out, np.array([0.0, 0.5, 2.0]), xp=xp, rtol=0)
    y = clip_inplace(asxp(xp, np.array([-1.0, 5.0])), xp, 0.0)
    xp_assert_close(y, np.array([0.0, 5.0]), rtol=0)


def test_clip_inplace_jax():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray([-1.0, 0.5, 3.0])
    out = clip_inplace(x, namespace(x), 0.0, 2.0)
    np.testing.assert_array_equal(np.asarray(out), [0.0, 0.5, 2.0])
    assert math.isclose(float(x[0]), -1.0)  # JAX arrays are immutable: a copy
