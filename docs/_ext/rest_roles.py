"""Griffe extension: the reST of otcore's numpydoc docstrings, as Markdown.

The docstrings are written for numpydoc (Sphinx roles and directives). mkdocstrings
parses their sections (``docstring_style: numpy``) but would print the inline reST
verbatim. Once griffe has loaded the package, this extension rewrites every docstring:

- ``:func:`x```, ``:class:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:``, ``:obj:``,
  ``:exc:`` -> a cross-reference to the rendered object (an autorefs ``<autoref>``
  marked optional: a target the site does not render -- ``scipy.optimize.linprog``,
  a private helper -- becomes plain code instead of a broken link). ``~`` keeps only
  the last component as the title, as in Sphinx. Names are resolved as Sphinx does
  for the current module: the enclosing class, the module, then the ``otcore``
  package (names are re-exported flat), then the dotted path as written.
- ``:math:`x``` -> ``$x$``; a ``.. math::`` block -> a ``$$ ... $$`` block. Both are
  turned into MathJax input by ``pymdownx.arithmatex`` (generic mode).
- ``.. note::`` / ``.. warning::`` / ``.. seealso::`` ... -> admonitions,
  ``.. versionadded::`` and friends -> an italic line, ``.. code-block::`` -> a fenced
  block, ```text <url>`_`` -> a Markdown link. Any other directive is left as it is
  (and the docs test fails on it).

The docstrings in the source stay plain numpydoc; nothing here changes the package.
"""

from __future__ import annotations

import re

import griffe

_XREF = re.compile(r":(?:py:)?(func|class|meth|attr|data|mod|obj|exc|const):`([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?P<name>[a-z-]+)::[ \t]*(?P<rest>.*)$")


def _lookup(collection, path: str):
    """The canonical path of ``path`` in the loaded modules, or None."""
    try:
        obj = collection[path]
    except Exception:  # KeyError, AliasResolutionError, ...: not a loaded object
        return None
    try:
        return obj.canonical_path if not obj.is_alias else obj.final_target.path
    except Exception:  # an alias to something griffe did not load (torch, jax, ...)
        return None


def _resolve(target: str, obj, collection) -> str | None:
    name = target.lstrip(".")
    scopes = []
    scope = obj
    while scope is not None:  # the object itself (methods of a class), its parents
        scopes.append(scope.path)
        scope = scope.parent
    root = obj.path.split(".", 1)[0]
    for prefix in [*scopes, root]:
        path = _lookup(collection, f"{prefix}.{name}")
        if path:
            return path
    return _lookup(collection, name)


def _xref(match: re.Match, obj, collection) -> str:
    role, text = match.group(1), match.group(2).strip()
    title_override = None
    m = re.fullmatch(r"(.*?)\s*<(.+)>", text)  # :func:`title <target>`
    if m:
        title_override, text = m.group(1), m.group(2)
    short = text.startswith("~")
    target = text.lstrip("~!").removesuffix("()")
    title = title_override or (target.rsplit(".", 1)[-1] if short else target)
    if role in ("func", "meth") and not title_override:
        title += "()"
    code = f"<code>{title}</code>"
    path = _resolve(target, obj, collection)
    if path is None or text.startswith("!"):
        return f"`{title}`"
    return f'<autoref identifier="{path}" optional>{code}</autoref>'


_ADMONITIONS = {"note", "warning", "seealso", "important", "tip", "caution", "attention", "danger", "hint"}
_VERSIONS = {"versionadded": "New in version", "versionchanged": "Changed in version", "deprecated": "Deprecated since version"}


def _directive_body(lines, i, indent):
    """The indented body of a directive starting after line ``i - 1``, and the next line index."""
    body = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= len(indent):
            break
        body.append(line)
        i += 1
    while body and not body[-1].strip():
        body.pop()
    options = [b for b in body if re.match(r"\s*:[\w-]+:", b) and not b.strip().startswith(":math:")]
    body = [b for b in body if b not in options]
    while body and not body[0].strip():
        body.pop(0)
    cut = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
    return [b[cut:] for b in body], i


def _directives(text: str) -> str:
    """``.. math::``, admonitions, ``.. versionadded::``, ``.. code-block::`` as Markdown."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m or m.group("name") not in ({"math", "code-block", "code"} | _ADMONITIONS | set(_VERSIONS)):
            out.append(lines[i])
            i += 1
            continue
        indent, name, arg = m.group("indent"), m.group("name"), m.group("rest").strip()
        body, i = _directive_body(lines, i + 1, indent)
        while out and not out[-1].strip():
            out.pop()
        if name == "math":
            block = ["$$", *([arg] if arg else []), *(b.strip() for b in body if b.strip()), "$$"]
        elif name in ("code-block", "code"):
            block = [f"```{arg}", *body, "```"]
        elif name in _ADMONITIONS:
            kind = "note" if name == "seealso" else name
            title = ' "See also"' if name == "seealso" else ""
            first = [arg] if arg else []
            block = [f"!!! {kind}{title}", *("    " + b if b.strip() else "" for b in first + body)]
        else:
            block = [f"*{_VERSIONS[name]} {arg}.*", *([""] + body if body else [])]
        out += ["", *(indent + b if b else "" for b in block), ""]
    return "\n".join(out)


_LINK = re.compile(r"`([^`<]+?)\s*<(https?://[^>]+)>`__?")


def convert(text: str, obj=None, collection=None) -> str:
    """reST roles and math of one docstring as Markdown (see the module docstring)."""
    text = _directives(text)
    text = _LINK.sub(r"[\1](\2)", text)
    text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    if obj is None:
        return _XREF.sub(lambda m: f"`{m.group(2).lstrip('~!').removesuffix('()')}`", text)
    return _XREF.sub(lambda m: _xref(m, obj, collection), text)


class RestRoles(griffe.Extension):
    """Rewrite the docstrings of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        collection = loader.modules_collection
        seen: set[int] = set()

        def walk(obj) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj, collection)
            for member in obj.members.values():
                if not member.is_alias:
                    walk(member)

        walk(pkg)
