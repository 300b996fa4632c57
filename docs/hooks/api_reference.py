"""MkDocs hook: expand ``<!-- api: onebit.PKG -->`` markers into the API reference of PKG.

A marker is replaced by one mkdocstrings block per public module of the package, found by walking
the source tree with griffe (static analysis, nothing is imported), so a new module appears in the
reference without editing a page. Each module is rendered with the names it *defines*; the names a
package only re-exports are listed in a table that links to where they are defined, so every object
is documented once, at its canonical path. ``<!-- api: onebit.X shallow -->`` renders X alone,
without its submodules, and ``<!-- api: rest -->`` every top-level module of ``onebit`` that no marker
on another page of ``docs/api/`` names (so a new subpackage is in the reference until it gets a page).

``<!-- cli-help -->`` (docs/guides/cli.md) becomes the ``--help`` of ``onebit`` and of every subcommand.
``public_modules()`` and ``undocumented()`` are also what ``tests/test_docs_site.py`` checks.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
# not part of the library API: the command line (documented in guides/cli.md) and the module runner
SKIP = ("onebit.cli", "onebit.__main__")
MARKER = re.compile(r"^<!-- api: (onebit[\w.]*|rest)( shallow)? -->$", re.M)
API_DIR = ROOT / "docs" / "api"


@functools.lru_cache(maxsize=1)
def _package():
    import griffe

    return griffe.load("onebit", search_paths=[str(SRC)], resolve_aliases=True, resolve_external=False)


def _skipped(path: str) -> bool:
    return any(path == s or path.startswith(s + ".") for s in SKIP) or any(
        part.startswith("_") for part in path.split(".")
    )


def _get(path: str):
    pkg = _package()
    return pkg if path == "onebit" else pkg[path.removeprefix("onebit.")]


def _submodules(module) -> list:
    subs = [m for n, m in module.members.items() if not m.is_alias and m.is_module and not _skipped(m.path)]
    return sorted(subs, key=lambda m: m.path)


def public_modules(path: str = "onebit") -> list[str]:
    """Dotted paths of every public module under ``path`` (itself included), packages first."""
    module = _get(path)
    out = [module.path]
    for sub in _submodules(module):
        out += public_modules(sub.path)
    return out


def own_members(module) -> list[str]:
    """Public names a module defines itself (not imported, not submodules), in source order."""
    names = []
    for name, obj in module.members.items():
        if name.startswith("_") or obj.is_alias or obj.is_module:
            continue
        names.append(name)
    return names


def _canonical(module, name: str) -> str | None:
    """Where an exported name is defined: the alias target, or (for names resolved lazily through a
    module ``__getattr__``) the one submodule that defines it."""
    obj = module.members.get(name)
    if obj is not None:
        try:
            return obj.final_target.path if obj.is_alias else obj.path
        except Exception:  # an alias to something outside onebit (e.g. torch)
            return None
    found = []
    for sub in _submodules(module):
        for p in [sub.path, *public_modules(sub.path)[1:]]:
            cand = _get(p).members.get(name)
            if cand is not None and not cand.is_alias:
                found.append(cand.path)
    return found[0] if len(set(found)) == 1 else None


def _exports_table(module) -> str:
    """The names a package re-exports, grouped by the module that defines them, as links."""
    groups: dict[str, list[str]] = {}
    for name in module.exports or []:
        if not isinstance(name, str):  # e.g. ``*_LAZY`` in onebit/__init__.py: listed by hand on the page
            continue
        obj = module.members.get(name)
        if obj is not None and not obj.is_alias:
            continue  # defined here: rendered below
        target = _canonical(module, name)
        if target is None or target == f"{module.path}.{name}":
            continue
        groups.setdefault(target.rsplit(".", 1)[0], []).append(f"[`{name}`][{target}]")
    if not groups:
        return ""
    lines = [f"`{module.path}` re-exports, each documented where it is defined:", ""]
    for where, links in groups.items():
        lines.append(f"- from [`{where}`][{where}]: " + ", ".join(links))
    return "\n".join(lines) + "\n"


def _block(module) -> str:
    own = own_members(module)  # none for a package that only re-exports, or an alias module
    members = "[" + ", ".join(own) + "]" if own else "false"
    out = f"::: {module.path}\n    options:\n      members: {members}\n"
    table = _exports_table(module)
    if table:
        out += "\n" + table
    return out


def claimed() -> set[str]:
    """Modules named by a marker on any page of docs/api/."""
    out = set()
    for page in API_DIR.glob("*.md"):
        out |= {m.group(1) for m in MARKER.finditer(page.read_text(encoding="utf-8")) if m.group(1) != "rest"}
    return out


def rest() -> list[str]:
    """Top-level modules of onebit that no marker names (rendered by ``<!-- api: rest -->``)."""
    taken = claimed()
    return [m.path for m in _submodules(_package()) if m.path not in taken]


def render(path: str, shallow: bool = False) -> str:
    """The Markdown that replaces one marker."""
    if path == "rest":
        paths = [p for top in rest() for p in public_modules(top)]
        if not paths:
            return "*(none: every module of onebit has its own page)*\n"
    else:
        paths = [path] if shallow else public_modules(path)
    return "\n\n".join(_block(_get(p)) for p in paths) + "\n"


def undocumented(path: str = "onebit") -> list[str]:
    """Public modules, functions, classes, methods and module attributes rendered without a docstring."""
    missing = []
    for mpath in public_modules(path):
        module = _get(mpath)
        if not module.docstring:
            missing.append(mpath)
        for name in own_members(module):
            obj = module.members[name]
            if not obj.docstring:
                missing.append(obj.path)
            if obj.is_class:
                for mname, meth in obj.members.items():
                    if mname.startswith("_") or meth.is_alias or not meth.is_function or mname in RENDER_SKIP:
                        continue
                    if not meth.docstring:
                        missing.append(meth.path)
    return missing


# torch.nn.Module hooks that are not API (also filtered out of the rendered pages in mkdocs.yml)
RENDER_SKIP = ("extra_repr",)


CLI_MARKER = "<!-- cli-help -->"


def cli_help() -> str:
    """``onebit --help`` and every subcommand's ``--help``, from the argparse parser itself (the CLI
    modules import nothing heavy at registration), so the page always matches the installed commands."""
    import argparse
    import os
    import sys

    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from onebit.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "86"
    try:
        parser = build_parser()
        out = ["```text", parser.format_help().rstrip(), "```", ""]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += [f"## `onebit {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_help())
    if "<!-- api:" not in markdown:
        return markdown
    return MARKER.sub(lambda m: render(m.group(1), bool(m.group(2))), markdown)
