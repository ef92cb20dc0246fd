"""The documentation site: a strict offline build with no raw reST, no CDN, no internal labels.

The site is built once per session into a temporary directory with
``mkdocs build --strict`` (warnings are errors: a broken cross-reference or a missing
page fails). Then the HTML is read as a reader's browser would get it:

- no raw reST: numpydoc roles (``:func:`...```), ``:math:`` and ``.. math::`` must have
  been turned into links and MathJax input (``docs/_ext/rest_roles.py``), and no
  ``$$`` left unrendered by arithmatex;
- maths is served by the site itself (``docs/_ext/mathjax_local.py`` copies MathJax
  from the ``django-static-mathjax`` package): no script or stylesheet from a CDN.

Skipped when the docs toolchain (the ``docs`` extra) is not installed.

The last test reads the sources a reader sees (docs pages, examples, README, the
docstrings of the package) for internal labels that mean nothing outside the
project's development notes ("seed 000", "the seeds' lambda", "the issue's target"):
papers are cited by author and year instead.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# a role as written (:func:`x`) or as Markdown renders it (:func:<code>x</code>)
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|data|mod|obj|exc|const|math|ref|doc|term):(?:`|<code>)")
DIRECTIVE = re.compile(r"^\s*\.\. [a-z-]+::", re.M)
CDN = re.compile(r"""(?:src|href)=["']?(?:https?:)?//[^"' >]*(?:mathjax|katex|jsdelivr|unpkg|cdnjs|polyfill)""", re.I)
PRE = re.compile(r"<pre.*?</pre>", re.S)
TABLE_ROW = re.compile(r"^\s*(?:<p>)?\|[^\n]*\|[ \t]*(?:</p>)?$", re.M)
EXTERNAL_SCRIPT = re.compile(r"""<script[^>]*\ssrc=["']?(?:https?:)?//""", re.I)


def _toolchain_missing():
    mods = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mathjax")
    return [m for m in mods if importlib.util.find_spec(m.split(".")[0]) is None or importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = _toolchain_missing()
    if missing:
        pytest.skip(f"the docs extra is not installed (missing: {', '.join(missing)}); "
                    'python -m pip install -e ".[docs]"')
    out_dir = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out_dir


def _pages(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 10, [str(p) for p in pages]
    return [(p.relative_to(site).as_posix(), p.read_text(encoding="utf-8")) for p in pages]


def _context(text, match):
    return text[max(0, match.start() - 80): match.end() + 80].replace("\n", " ")


def test_api_reference_renders_every_family(site):
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("otcore._pairwise.pairwise_distances", "otcore._exact.emd", "otcore._sinkhorn.sinkhorn",
                 "otcore._tree.tree_emd", "otcore._onedim.cdf_emd", "otcore._cost.cost_matrix",
                 "otcore._coupling.transport_cost"):
        assert f'id="{name}"' in api, name
    # numpydoc sections are parsed (not shown as a literal "Parameters\n----------")
    assert "----------" not in api
    # roles became links between rendered objects, maths became MathJax input
    assert api.count('class="autorefs autorefs-internal"') >= 20
    assert api.count('class="arithmatex"') >= 50


def test_no_raw_rest_in_the_site(site):
    bad = []
    for name, html in _pages(site):
        bad += [f"{name}: {_context(html, m)}" for m in ROLE.finditer(html)]
        bad += [f"{name}: {_context(html, m)}" for m in DIRECTIVE.finditer(html)]
        bad += [f"{name}: {_context(html, m)} (unrendered display maths)" for m in re.finditer(r"\$\$", html)]
        prose = PRE.sub("", html)
        bad += [f"{name}: {_context(prose, m)} (reST literal)" for m in re.finditer(r"``", prose)]
        bad += [f"{name}: {_context(prose, m)} (unrendered table: a | inside maths?)" for m in TABLE_ROW.finditer(prose)]
    assert not bad, "\n".join(bad[:30]) + f"\n({len(bad)} in all)"


def test_maths_is_served_by_the_site(site):
    mathjax = site / "javascripts" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 100_000
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (site / "javascripts" / "mathjax.js").exists()
    loaded = 0
    for name, html in _pages(site):
        assert not CDN.search(html), f"{name}: {_context(html, CDN.search(html))}"
        assert not EXTERNAL_SCRIPT.search(html), f"{name}: {_context(html, EXTERNAL_SCRIPT.search(html))}"
        loaded += "javascripts/mathjax/tex-chtml.js" in html
    assert loaded == len(_pages(site))


# --- internal labels in what a reader sees -------------------------------------------------

LABEL = re.compile(
    r"\bseeds?\s*0\d\d\b"            # "seed 000", "seed 001's", "seeds 000 and 002"
    r"|\bseeds'"                     # "the seeds' lambda"
    r"|\bissue's\b"                  # "the target"
    r"|\bthe seeds?\b(?!\s*(?:=|of the (?:random|RNG)|for the (?:random|RNG)))"  # "as in the seed"
    r"|\bseed\s*\(",                 # "(seed ..." style asides
    re.I,
)


def _reader_files():
    files = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "examples").glob("*.py"))
    files += [ROOT / "README.md"] + sorted((ROOT / "otcore").glob("*.py"))
    return files


@pytest.mark.parametrize("path", _reader_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_internal_labels(path):
    text = path.read_text(encoding="utf-8")
    bad = [f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: {_context(text, m)}"
           for m in LABEL.finditer(text)]
    assert not bad, ("cite papers by author and year (Cuturi 2013, Frogner et al. 2015, "
                     "Dhariwal & Inala, Hou et al. 2016, Martinez) instead of:\n" + "\n".join(bad))


# --- the reST -> Markdown conversion on its own (no site build) ----------------------------


def _rest_roles():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("_otcore_docs_rest_roles", ROOT / "docs" / "_ext" / "rest_roles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rest_roles_conversion():
    convert = _rest_roles().convert
    text = (
        "Solve :math:`\\min_P \\langle P, M\\rangle` with :func:`~otcore.emd`.\n"
        "\n"
        "    .. math::\n"
        "       :label: w\n"
        "\n"
        "       W = \\sum_i x_i\n"
        "\n"
        "           + y\n"
        "\n"
        "    after\n"
    )
    out = convert(text)
    assert out.splitlines()[0] == "Solve $\\min_P \\langle P, M\\rangle$ with `otcore.emd`."
    assert "    $$\n    W = \\sum_i x_i\n    + y\n    $$\n" in out
    assert "label" not in out and ".. math::" not in out
    assert out.rstrip().endswith("    after")


def test_rest_roles_resolve_to_rendered_objects():
    griffe = pytest.importorskip("griffe")
    mod = _rest_roles()
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    pkg = loader.load("otcore")
    collection = loader.modules_collection
    tree = pkg["_tree"]
    # a bare name is found in the module, then in the flat package namespace
    out = mod.convert(":func:`tree_emd` and :class:`~otcore.EMDResult` and :func:`scipy.optimize.linprog`",
                      tree, collection)
    assert '<autoref identifier="otcore._tree.tree_emd" optional><code>tree_emd()</code></autoref>' in out
    assert '<autoref identifier="otcore._exact.EMDResult" optional><code>EMDResult</code></autoref>' in out
    assert "`scipy.optimize.linprog()`" in out  # not an otcore object: plain code, no link


def test_rest_directives_conversion():
    convert = _rest_roles().convert
    out = convert("Text, see `POT <https://pythonot.github.io>`_.\n\n"
                  "    .. note:: Careful\n       here.\n\n    .. versionadded:: 0.2\n\n"
                  "    .. code-block:: python\n\n       x = 1\n\n    end\n")
    assert "[POT](https://pythonot.github.io)" in out
    assert "    !!! note\n        Careful\n        here.\n" in out
    assert "    *New in version 0.2.*" in out
    assert "    ```python\n    x = 1\n    ```" in out
    assert ".. " not in out
