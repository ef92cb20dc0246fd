"""mkdocs hook: reST inline literals (````x````) inside rendered type fields.

numpydoc type lines (``a : array, shape ``(n,)````) are rendered by mkdocstrings as
code, verbatim, so their reST double backquotes would show. In every one-line
``<code>`` element of a page this hook drops them (the text is code already).
Markdown text is not affected: there ````x```` is a code span anyway.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"<code>([^\n]*?)</code>")
_LITERAL = re.compile(r"``([^`\n]+?)``")


def on_page_content(html: str, **kwargs) -> str:
    return _CODE.sub(lambda m: "<code>" + _LITERAL.sub(r"\1", m.group(1)) + "</code>", html)
