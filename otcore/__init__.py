"""otcore: optimal-transport numerics on the Python array API."""

from otcore._validate import ConvergenceWarning

__version__ = "0.1.0"

__all__ = ["ConvergenceWarning", "__version__"]
