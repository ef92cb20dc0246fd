"""The documentation site builds with warnings as errors (`mkdocs build --strict`).

Skipped when mkdocs (the `docs` extra) is not installed. The site is built into a
temporary directory; the build needs no network (MathJax is loaded by the browser).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")),
    reason="the docs extra (mkdocs-material, mkdocstrings[python]) is not installed",
)
def test_docs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("otcore._pairwise.pairwise_distances", "otcore._exact.emd", "otcore._sinkhorn.sinkhorn"):
        assert f'id="{name}"' in api, name
    assert (tmp_path / "site" / "javascripts" / "mathjax.js").exists()
