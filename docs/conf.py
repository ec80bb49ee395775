"""Sphinx configuration for the Flask-Stash documentation.

Build with ``make docs``. The build runs with ``-W -n``: every warning,
including a reference that does not resolve, fails it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Import the package from this checkout even without an editable install.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import flask_stash  # noqa: E402

project = "Flask-Stash"
author = "the Flask-Stash authors"
copyright = author
release = flask_stash.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
templates_path: list[str] = []

# -- references ---------------------------------------------------------------

nitpicky = True

# Only names from outside Flask-Stash are listed here: the standard library,
# Flask, Werkzeug and the store clients, which the build has no inventory for
# (intersphinx is off, so the build never goes to the network). A warning
# about a flask_stash name is never silenced: document the name instead.
nitpick_ignore_regex = [
    ("py:class", r"(collections|typing|types|datetime|threading|socket|os|inspect)\..+"),
    ("py:class", r"urllib\.parse\.SplitResult"),
    ("py:class", r"(flask|werkzeug|jinja2)(\..+)?"),
    ("py:class", r"(redis|pymemcache|bmemcached|diskcache|msgpack)(\..+)?"),
    ("py:class", r"(prometheus_client|blinker|click)(\..+)?"),
    # Where a module imports a name only for type checkers, autodoc cannot
    # evaluate the signature and shows the other names unqualified too.
    ("py:class", r"Flask|Response|CollectorRegistry"),
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
# The architecture notes stay Markdown; they are published next to the pages
# as they are, and the index links to them.
html_extra_path = ["architecture.md"]
html_copy_source = False
