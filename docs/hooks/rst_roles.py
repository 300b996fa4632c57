"""Griffe extension for the API reference: Sphinx roles in docstrings read as code.

Some docstrings use reStructuredText roles (``:class:`Model```, ``:func:`export```); the Google-style
Markdown renderer would print the role name literally. This rewrites ``:role:`target``` (and
``:role:`~target```) to an inline code span at load time, for every object, without touching the
source. Registered in mkdocs.yml under the python handler's ``extensions``.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const):`~?([^`]+)`")


def strip_roles(text: str) -> str:
    """``:class:`X``` -> ```X``` (a code span)."""
    return ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class RstRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in each docstring to code spans."""

    def on_instance(self, *, obj, **kwargs) -> None:  # noqa: D102
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = strip_roles(obj.docstring.value)
