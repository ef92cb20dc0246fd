"""Shared fixtures: the ``xp`` fixture runs a test on every available array namespace.

numpy always; ``array_api_strict`` (the standard and nothing more: proves the
core is namespace-neutral); cupy where a CUDA device is present; torch (CPU)
through array-api-compat where torch is installed. Backends that are missing
skip cleanly.
"""

import importlib.util

import numpy as np
import pytest


def _cupy_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


BACKENDS = ["numpy", "array_api_strict", "cupy", "torch"]


def get_namespace(name):
    if name == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if name == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
        return xp
    if name == "cupy":
        if not _cupy_available():
            pytest.skip("cupy with a CUDA device not available")
        import array_api_compat.cupy as xp

        return xp
    if name == "torch":
        pytest.importorskip("torch")
        import array_api_compat.torch as xp

        return xp
    raise ValueError(name)


@pytest.fixture(params=BACKENDS)
def xp(request):
    """An array-API namespace: numpy, array_api_strict, cupy (GPU only), torch (if installed)."""
    return get_namespace(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
