"""The documentation site (mkdocs.yml, docs/) builds strictly, and its API reference covers the code.

`mkdocs build --strict` fails on a broken link, a missing page or anchor, a nav entry without a file
and an API reference (``::: onebit.x``) that does not resolve. On top of the build, the API pages must
hold every public module and every public name must have a docstring, so the reference cannot drift
from the code; every image on the site must sit next to the command that makes it.

Needs the ``docs`` extra (``pip install -e ".[docs]"``); skipped, with that reason, without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "griffe")


def _missing() -> list[str]:
    out = []
    for name in _NEEDED:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except ModuleNotFoundError:  # parent package absent (mkdocstrings_handlers)
            out.append(name)
    return out


pytestmark = pytest.mark.skipif(
    bool(_missing()),
    reason=f"the docs extra is not installed (missing {', '.join(_missing())}): pip install -e \".[docs]\"",
)


def _hook():
    """docs/hooks/api_reference.py: the module walk the site's API pages are generated from."""
    spec = importlib.util.spec_from_file_location("onebit_docs_api_reference", DOCS / "hooks" / "api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tracked(paths: list[str]) -> set[str] | None:
    """Which of the source files git tracks (None outside a git checkout). Files not yet added to git
    are work in progress, not what CI checks; in CI's fresh clone every file is tracked."""
    try:
        out = subprocess.run(["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.split())


def _module_file(path: str) -> str:
    rel = Path("src", *path.split("."))
    return str(rel / "__init__.py") if (ROOT / rel).is_dir() else str(rel.with_suffix(".py"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    log = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    return out


@pytest.mark.slow
def test_site_builds_strictly(site):
    for page in ("index.html", "getting-started.html", "guides/binarize.html", "guides/reproduce.html",
                 "guides/deploy.html", "guides/diagnostics.html", "guides/cli.html", "format.html", "runtime.html",
                 "results.html", "results/figures.html", "api/index.html"):
        assert (site / page).is_file(), f"{page} missing from the built site"


@pytest.mark.slow
def test_api_reference_has_every_public_module(site):
    hook = _hook()
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "api").glob("*.html"))
    anchors = set(re.findall(r'id="(onebit[\w.]*)"', html))
    missing = [m for m in hook.public_modules() if m not in anchors]
    assert not missing, f"public modules without an entry in the API reference: {missing}"
    for name in ("onebit.quantizers.dab.DAB", "onebit.nn.pool.EMAMaxPool", "onebit.nn.lsr.LSRScale",
                 "onebit.convert.binarize.binarize", "onebit_runtime.model.load", "onebit.export.writer.export",
                 "onebit.train.trainer.run", "onebit.analysis.entropy.pooled_entropy", "onebit.data.registry.get_dataset"):
        assert name in anchors, f"{name} is not rendered in the API reference"


def test_every_public_name_has_a_docstring():
    hook = _hook()

    def owner(name: str) -> str:  # the source file that defines ``name``
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            f = _module_file(".".join(parts[:i]))
            if (ROOT / f).is_file():
                return f
        return ""

    missing = hook.undocumented()
    tracked = _tracked(sorted({owner(n) for n in missing})) if missing else set()
    if tracked is not None:
        missing = [n for n in missing if owner(n) in tracked]
    assert not missing, (
        "public names without a docstring (the API reference renders them bare); add one, e.g. a string "
        f"literal right after a constant: {missing}")


def test_every_image_comes_with_its_command():
    """No picture without the command that makes it: each embedded image has a caption or a nearby line
    naming a repository command (`python benchmarks/...`, `onebit ...`, `bash docs/...`), or sits on a
    page whose header names the command that generated the page and its images (docs/results/engine.md)."""
    command = re.compile(r"`(python benchmarks/|onebit |bash docs/)")
    problems = []
    for page in DOCS.rglob("*.md"):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", line):
                image = (page.parent / target).resolve()
                if not image.is_file():
                    problems.append(f"{page.relative_to(ROOT)}:{i + 1}: {target} does not exist")
                window = "\n".join(lines[max(0, i - 8): i + 9] + lines[:5])
                if not command.search(window):
                    problems.append(f"{page.relative_to(ROOT)}:{i + 1}: {target} has no command next to it")
    pngs = {p.resolve() for p in DOCS.rglob("*.png")}
    used = set()
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            used.add((page.parent / target).resolve())
    problems += [f"{p.relative_to(ROOT)} is not shown on any page" for p in sorted(pngs - used)]
    assert not problems, "\n".join(problems)
