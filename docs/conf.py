"""Sphinx configuration of the hpcsys documentation.

The configuration reference is generated at build time from the schema in
:mod:`hpcsys.config` (``config_reference()``) by the ``hpcsys-config-reference``
directive defined below, so it can never drift from the code. The example
gallery (``docs/examples/plot_*.py``) is executed by sphinx-gallery on every
build; nothing generated is committed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hpcsys  # noqa: E402

project = "hpcsys"
author = "hpcsys developers"
copyright = "2026, hpcsys developers"
release = hpcsys.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path: list[str] = []
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "sg_execution_times.rst"]
root_doc = "index"

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"  # numpydoc docstrings carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Example gallery ---------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "min_reported_time": 1,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"hpcsys {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False


class ConfigReference(SphinxDirective):
    """``.. hpcsys-config-reference::`` inserts :func:`hpcsys.config.config_reference`."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from hpcsys.config import config_reference

        text = config_reference()
        container = nodes.section()
        container.document = self.state.document
        lines = StringList(text.splitlines(), source="hpcsys.config.config_reference()")
        self.state.nested_parse(lines, self.content_offset, container, match_titles=True)
        return container.children


def setup(app):
    """Register the configuration-reference directive."""
    app.add_directive("hpcsys-config-reference", ConfigReference)
    return {"parallel_read_safe": True}
