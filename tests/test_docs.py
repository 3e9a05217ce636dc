"""Cheap checks of the documentation sources (the full build is ``make docs``)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from docutils.core import publish_doctree

from hpcsys.config import config_reference

DOCS = Path(__file__).resolve().parent.parent / "docs"
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


def _references() -> list[tuple[str, str]]:
    refs = []
    for page in sorted(DOCS.glob("*.rst")):
        refs += [(page.name, m) for m in _ROLE.findall(page.read_text())]
    return refs


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
    doctree = publish_doctree(config_reference(),
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
