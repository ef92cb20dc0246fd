"""mkdocs hook: serve MathJax from the site itself, copied from an installed package.

The maths of the site (``pymdownx.arithmatex``, generic mode) is typeset in the browser
by MathJax 3. Rather than a CDN, MathJax comes from the ``django-static-mathjax`` wheel
(a plain copy of MathJax's ``es5`` build; Django itself is not needed): after each build
the files the pages use are copied to ``site/javascripts/mathjax/``, so the site reads
its maths with no network. A build without the package fails with a clear message.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from mkdocs.exceptions import PluginError

DEST = os.path.join("javascripts", "mathjax")
# the component the pages load, its fonts, the TeX extensions it may autoload, the
# contextual menu and its accessibility extensions (loaded on demand)
FILES = ("tex-chtml.js",)
DIRS = ("output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y")


def mathjax_dir() -> str:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(
            "MathJax is not installed: the docs serve it from the django-static-mathjax "
            'package (python -m pip install -e ".[docs]")'
        )
    es5 = os.path.join(list(spec.submodule_search_locations)[0], "static", "mathjax", "es5")
    if not os.path.isfile(os.path.join(es5, FILES[0])):
        raise PluginError(f"{es5} has no {FILES[0]}: reinstall django-static-mathjax")
    return es5


def on_post_build(config, **kwargs) -> None:
    src = mathjax_dir()
    dest = os.path.join(config["site_dir"], DEST)
    os.makedirs(dest, exist_ok=True)
    for name in FILES:
        shutil.copy2(os.path.join(src, name), os.path.join(dest, name))
    for name in DIRS:
        shutil.copytree(os.path.join(src, name), os.path.join(dest, name), dirs_exist_ok=True)
