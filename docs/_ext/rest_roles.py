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

The docstrings in the source stay plain numpydoc; nothing here changes the package.
"""

from __future__ import annotations

import re

import griffe

_XREF = re.compile(r":(?:py:)?(func|class|meth|attr|data|mod|obj|exc|const):`([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


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
    target = text.lstrip("~!")
    title = title_override or (target.rsplit(".", 1)[-1] if short else target)
    if role in ("func", "meth") and not title_override:
        title += "()"
    code = f"<code>{title}</code>"
    path = _resolve(target, obj, collection)
    if path is None or text.startswith("!"):
        return f"`{title}`"
    return f'<autoref identifier="{path}" optional>{code}</autoref>'


def _math_blocks(text: str) -> str:
    """``.. math::`` directives (and their indented bodies) as ``$$`` blocks."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        body = [m.group("rest")] if m.group("rest").strip() else []
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip() and len(line) - len(line.lstrip()) <= len(indent):
                break
            stripped = line.strip()
            if stripped and not re.match(r":\w+:", stripped):  # skip :label: / :nowrap:
                body.append(stripped)
            i += 1
        while out and not out[-1].strip():
            out.pop()
        out += ["", f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]
    return "\n".join(out)


def convert(text: str, obj=None, collection=None) -> str:
    """reST roles and math of one docstring as Markdown (see the module docstring)."""
    text = _math_blocks(text)
    text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    if obj is None:
        return _XREF.sub(lambda m: f"`{m.group(2).lstrip('~!')}`", text)
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
