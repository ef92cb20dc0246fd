"""Test helpers: moving reference data into a namespace and comparing across namespaces."""

import numpy as np
from array_api_compat import array_namespace

from otcore._array import to_host


def asxp(xp, x, dtype=None):
    """numpy data ``x`` as an array of namespace ``xp`` (float64 unless ``dtype``)."""
    x = np.asarray(x)
    if dtype is None and x.dtype.kind == "f":
        dtype = xp.float64 if x.dtype == np.float64 else xp.float32
    return xp.asarray(x, dtype=dtype) if dtype is not None else xp.asarray(x)


def assert_namespace(actual, xp):
    """``actual`` is an array of namespace ``xp`` (compared by module name)."""
    got = array_namespace(actual).__name__
    want = xp.__name__
    assert got.split(".")[-1] == want.split(".")[-1], f"result namespace {got}, expected {want}"


def xp_assert_close(actual, desired, *, xp=None, rtol=1e-7, atol=0.0, dtype=None):
    """Values close (on the host); namespace and dtype checked when ``xp``/``dtype`` given."""
    if xp is not None:
        assert_namespace(actual, xp)
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}"
    np.testing.assert_allclose(to_host(actual), np.asarray(to_host(desired)), rtol=rtol, atol=atol)


def random_histograms(rng, shape, zeros=0):
    """Positive histograms summing to one along the last axis (``zeros`` bins set to 0)."""
    h = rng.random(shape) + 0.05
    if zeros:
        idx = rng.choice(shape[-1], size=zeros, replace=False)
        h[..., idx] = 0.0
    return h / h.sum(-1, keepdims=True)
