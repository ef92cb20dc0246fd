"""Root conftest: doctest collection of optional adapters only where their framework is installed."""

import importlib.util

collect_ignore = ["setup.py"]
if importlib.util.find_spec("torch") is None:
    collect_ignore.append("otcore/torch.py")
if importlib.util.find_spec("jax") is None:
    collect_ignore.append("otcore/jax.py")
collect_ignore_glob = ["benchmarks/*", "examples/*", "docs/*"]
