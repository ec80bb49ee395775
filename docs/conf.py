"""Sphinx configuration for the Flask-Stash documentation.

Build with ``make docs``. The build runs with ``-W -n``: every warning,
including a reference that does not resolve, fails it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Import the package from this checkout even without an editable install.
DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(DOCS))

from inventories import write_inventories  # noqa: E402

import flask_stash  # noqa: E402

project = "Flask-Stash"
author = "the Flask-Stash authors"
copyright = author
release = flask_stash.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "myst_parser"]

root_doc = "index"
# The architecture notes are Markdown, read by MyST; every other page is reST.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path: list[str] = []

# -- references ---------------------------------------------------------------

nitpicky = True

# Python, Flask and Werkzeug names link to those projects' docs. Their
# inventories are written from the installed packages on every build (see
# inventories.py), so the build never goes to the network and a fresh clone
# needs nothing but the installed packages.
intersphinx_mapping = write_inventories(DOCS / "_build" / "inventories")

# Only names from outside Flask-Stash, that no inventory above has, are
# listed here: the store clients and other packages without an inventory. A
# warning about a flask_stash name is never silenced: document the name instead.
nitpick_ignore_regex = [
    ("py:class", r"(jinja2|redis|pymemcache|bmemcached|diskcache|msgpack)(\..+)?"),
    ("py:class", r"(prometheus_client|blinker|click)(\..+)?"),
    # Where a module imports a name only for type checkers, autodoc cannot
    # evaluate the signature and shows the other names unqualified too.
    ("py:class", r"Flask|Response|CollectorRegistry"),
    # autodoc splits a subscripted alias at its comma: "Mapping[str".
    ("py:class", r"collections\.abc\.\w+\[.*"),
]

# -- autodoc ------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Keep these aliases by name in signatures, rather than spelling out the
# types they stand for; each is documented in api.rst.
autodoc_type_aliases = {
    "HashMethod": "flask_stash.keys.HashMethod",
    "TagsArgument": "flask_stash.memoize.TagsArgument",
    "_memoize.TagsArgument": "flask_stash.memoize.TagsArgument",
}

# -- HTML ---------------------------------------------------------------------

html_theme = "furo"
html_title = f"Flask-Stash {release}"
html_short_title = "Flask-Stash"
html_static_path: list[str] = []
html_copy_source = False
