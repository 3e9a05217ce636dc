"""Cheap checks of the documentation sources (the full build is ``make docs``)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from hpcsys.config import config_reference

DOCS = Path(__file__).resolve().parent.parent / "docs"
REPO = DOCS.parent
#: Generated pages (Sphinx output, gallery, autosummary): not hand-written.
_GENERATED = ("_build", "auto_examples", "gen_modules")
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data):`~?(hpcsys(?:\.\w+)*)`")


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and get the remaining attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def _pages() -> list[Path]:
    """The hand-written reST pages, sub-directories (``docs/science/``) included."""
    return sorted(p for p in DOCS.rglob("*.rst")
                  if not any(part in _GENERATED for part in p.relative_to(DOCS).parts))


def _references() -> list[tuple[str, str]]:
    refs = []
    for page in _pages():
        refs += [(str(page.relative_to(DOCS)), m) for m in _ROLE.findall(page.read_text())]
    return refs


def test_science_pages_are_in_the_docs():
    names = {str(p.relative_to(DOCS)) for p in _pages()}
    assert {"science.rst", "science/models.rst", "science/conventions.rst",
            "science/tables.rst", "correlated_pixels.rst"} <= names
    index = (DOCS / "science.rst").read_text()
    for page in ("science/models", "science/conventions", "science/tables", "correlated_pixels"):
        assert f"   {page}\n" in index, page


def test_no_reference_to_files_outside_the_repository():
    """Docs, README and tests cite "Berlfein+24 Eq. N" or the docs pages, never the
    developers' private notes (which are not part of the project)."""
    # spelled in pieces so that this line does not match itself
    private = tuple("".join(parts) for parts in (("SCI", "ENCE.md"), ("HPC", "-NOTES"),
                                                  ("SCI", "ENCE-like")))
    files = [*_pages(), REPO / "README.md", *sorted((REPO / "tests").glob("*.py"))]
    hits = [f"{f.relative_to(REPO)}:{i}" for f in files
            for i, line in enumerate(f.read_text().splitlines(), 1)
            if any(p in line for p in private)]
    assert not hits, hits


def test_docs_reference_existing_code():
    """Every :func:/:class:/:mod: target named in the hand-written pages exists."""
    refs = _references()
    assert len(refs) > 30
    missing = []
    for page, target in refs:
        try:
            _resolve(target)
        except (ModuleNotFoundError, AttributeError):
            missing.append(f"{page}: {target}")
    assert not missing, missing


def test_config_reference_is_warning_free_rst():
    """The generated configuration reference parses without docutils warnings."""
    docutils_core = pytest.importorskip("docutils.core")  # the docs extra
    doctree = docutils_core.publish_doctree(config_reference(),
                              settings_overrides={"halt_level": 2, "report_level": 2})
    text = doctree.astext()
    for key in ("nside", "n_realisations", "mcmc_walkers", "alpha", "threads_per_rank"):
        assert key in text


@pytest.mark.parametrize("example", sorted((DOCS / "examples").glob("plot_*.py")),
                         ids=lambda p: p.name)
def test_gallery_examples_have_a_titled_docstring(example):
    doc = ast.get_docstring(ast.parse(example.read_text()))
    assert doc, example.name
    title, underline = doc.splitlines()[:2]
    assert title.strip() and set(underline.strip()) == {"="} and len(underline) >= len(title)
