"""The documentation builds cleanly, and every link and reference in it resolves.

Sphinx runs once per session, in a subprocess (so its own warnings never meet
pytest's ``filterwarnings = error``), with ``-W -n``: any warning fails the
build, and nitpicky mode turns a cross-reference that does not resolve into
a warning. The build runs with every proxy pointed at a closed port, so it
proves the docs build without the network. The other tests then read the
sources and the built pages: ``:doc:`` and ``:ref:`` targets, internal links
and anchors, links into the Python, Flask and Werkzeug docs, the syntax of
every Python example, and that no page shows an error box (a warning
``-W`` does not see, such as the one Furo draws for a ``contents``
directive). ``test_docs_screenshots.py`` checks the same in a browser.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .servers import servers_required

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCES = sorted(DOCS.glob("*.rst"))
#: Every page: the reST sources and the Markdown ones MyST reads.
PAGES = sorted([*SOURCES, *DOCS.glob("*.md")])

# `text <target>` or `target`, after an optional leading "~" or "!".
_ROLE = re.compile(r":(doc|ref):`(?:[^`<]*<([^`>]+)>|([^`<]+))`")
_LABEL = re.compile(r"^\.\. _([^:]+):\s*$", re.MULTILINE)
_CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block:: python\s*\n((?:\1[ \t]+\S.*\n|[ \t]*\n)*)", re.M)


@dataclass
class Page:
    """What a built HTML page links to, and the anchors it defines."""

    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.page.ids.add(value)
            elif name == "href" or (name == "src" and tag in ("img", "script")):
                self.page.links.append(value)


def read_page(path: Path) -> Page:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.page


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install 'flask-stash[docs]'"
        if servers_required():
            pytest.fail(message + "; CI requires it", pytrace=False)
        pytest.skip(message)


def _offline_environment() -> dict[str, str]:
    """The environment with every proxy at a closed port: a download fails at once."""
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        env[name] = env[name.upper()] = "http://127.0.0.1:9"
    return env


def sphinx_build(
    source: Path, out: Path, *options: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run sphinx-build on *source* into *out* (doctrees beside it), offline."""
    for module in ("sphinx", "furo", "myst_parser"):
        _require(module)
    command = [
        sys.executable,
        "-m",
        "sphinx",
        *options,
        "-q",
        "-b",
        "html",
        "-d",
        str(out.parent / f"{out.name}-doctrees"),
        str(source),
        str(out),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_offline_environment(),
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"sphinx-build failed (exit {done.returncode}):\n{done.stderr}{done.stdout}",
            pytrace=False,
        )
    return done


_BUILT: dict[str, Path] = {}


def build_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML docs once per session, warnings as errors; return the output."""
    if "docs" not in _BUILT:
        out = tmp_path_factory.mktemp("docs") / "html"
        sphinx_build(DOCS, out, "-W", "--keep-going", "-n")
        _BUILT["docs"] = out
    return _BUILT["docs"]


#: A page with what docutils, Sphinx and Furo mark as mistakes: a contents
#: directive (Furo's error box), a role and a directive that do not exist
#: (system messages kept in the page by ``keep_warnings``, and the
#: "problematic" text they point at) and an error admonition.
_BROKEN_PAGE = """\
Broken
======

.. contents:: On this page
   :local:

First
-----

An :no-such-role:`x` in a sentence.

.. no-such-directive:: y

.. error:: An error box.

Second
------

Text.
"""


def build_broken_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build, once per session, a one-page project that shows every error box."""
    if "broken" not in _BUILT:
        root = tmp_path_factory.mktemp("broken-docs")
        source = root / "source"
        source.mkdir()
        (source / "conf.py").write_text('html_theme = "furo"\nkeep_warnings = True\n')
        (source / "index.rst").write_text(_BROKEN_PAGE)
        sphinx_build(source, root / "html")
        _BUILT["broken"] = root / "html"
    return _BUILT["broken"]


@pytest.fixture(scope="session")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_docs(tmp_path_factory)


@pytest.fixture(scope="session")
def broken_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_broken_docs(tmp_path_factory)


def test_docs_build_without_warnings(built_docs: Path) -> None:
    for source in PAGES:
        assert (built_docs / source.with_suffix(".html").name).is_file(), source.name


def _labels() -> set[str]:
    return {label for source in SOURCES for label in _LABEL.findall(source.read_text())}


def _role_targets() -> Iterator[tuple[str, str, str]]:
    """Yield (file name, role, target) for every :doc: and :ref: in the sources."""
    for source in SOURCES:
        for role, explicit, bare in _ROLE.findall(source.read_text()):
            yield source.name, role, (explicit or bare).strip().lstrip("~!")


def test_every_doc_and_ref_target_exists() -> None:
    labels = _labels()
    # Labels Sphinx defines by itself.
    labels |= {"genindex", "modindex", "search"}
    missing = []
    seen = 0
    for name, role, target in _role_targets():
        seen += 1
        if role == "doc":
            found = any(
                (DOCS / f"{target.lstrip('/')}{suffix}").is_file() for suffix in (".rst", ".md")
            )
        else:
            found = target.lower() in labels
        if not found:
            missing.append(f"{name}: :{role}:`{target}`")
    assert seen > 20, "the pattern no longer finds the references"
    assert not missing, "references to nothing:\n" + "\n".join(missing)


def test_every_label_is_unique() -> None:
    found: dict[str, str] = {}
    duplicates = []
    for source in SOURCES:
        for label in _LABEL.findall(source.read_text()):
            if label in found:
                duplicates.append(f"{label} in {found[label]} and {source.name}")
            found[label] = source.name
    assert not duplicates, duplicates


def test_internal_links_and_anchors_resolve(built_docs: Path) -> None:
    pages = {path: read_page(path) for path in built_docs.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue  # external: not checked, so the test needs no network
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(built_docs)}: {link} (no such file)")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else read_page(target).ids
                if fragment not in ids:
                    broken.append(f"{path.relative_to(built_docs)}: {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(sorted(set(broken)))


def test_architecture_notes_are_a_page(built_docs: Path) -> None:
    """architecture.md is rendered by MyST into a page of the toctree, not copied raw."""
    page = (built_docs / "architecture.html").read_text(encoding="utf-8")
    assert not (built_docs / "architecture.md").exists()
    assert re.search(r"<h1>Architecture<a class=\"headerlink\"", page)
    # The module table is an HTML table, not Markdown pipes.
    assert "<table" in page
    assert '<span class="pre">engine.py</span></code></p></td>' in page
    assert "| module |" not in page
    for heading in re.findall(r"^## (.+)$", (DOCS / "architecture.md").read_text(), re.M):
        assert f'>{heading}<a class="headerlink"' in page, heading
    links = read_page(built_docs / "index.html").links
    assert "architecture.html" in links


def test_changes_and_license_pages_include_the_repository_files(built_docs: Path) -> None:
    root = DOCS.parent
    changes = (built_docs / "changes.html").read_text(encoding="utf-8")
    # Every version heading of CHANGES.rst is a section of the page.
    versions = re.findall(r"^(Version \S+)\n-+$", (root / "CHANGES.rst").read_text(), re.M)
    assert versions, "CHANGES.rst has no 'Version ...' heading"
    for version in versions:
        assert f'>{version}<a class="headerlink"' in changes, version
    license_page = (built_docs / "license.html").read_text(encoding="utf-8")
    license_text = (root / "LICENSE").read_text()
    assert "BSD 3-Clause License" in license_text
    for line in ("BSD 3-Clause License", license_text.splitlines()[-1].strip()):
        assert line.replace('"', "&quot;") in license_page, line
    links = read_page(built_docs / "index.html").links
    assert {"changes.html", "license.html"} <= set(links)


# -- error boxes ---------------------------------------------------------------

#: Classes docutils and Sphinx give what they could not handle, with why it shows.
PROBLEM_CLASSES = {
    "system-message": "a docutils system message (an error or warning) left in the page",
    "problematic": "markup docutils could not resolve, shown in red",
}
#: An ``.. error::`` admonition: a red box no page of these docs shows on purpose.
ERROR_ADMONITION = frozenset({"admonition", "error"})

# A CSS rule that writes "ERROR..." into the page, as Furo's for a contents
# directive: its selectors, before the braces.
_ERROR_RULE = re.compile(r"([^{}]+)\{[^{}]*\bcontent:\s*[\"']ERROR")
# The selectors the check understands: classes, each optionally negated,
# with an optional ::before/::after.
_SELECTOR = re.compile(r"^((?:\.[\w-]+|:not\(\.[\w-]+\))+)(?:::?(?:before|after))?$")
_SELECTOR_PART = re.compile(r"(:not\()?\.([\w-]+)\)?")


@dataclass(frozen=True)
class ClassRule:
    """An element matches when it has every class of *required* and none of *excluded*."""

    selector: str
    required: frozenset[str]
    excluded: frozenset[str]

    def matches(self, classes: set[str]) -> bool:
        return self.required <= classes and not (self.excluded & classes)

    @property
    def css(self) -> str:
        """The rule as a CSS selector without the pseudo-element, for the browser."""
        return "".join(f".{c}" for c in sorted(self.required)) + "".join(
            f":not(.{c})" for c in sorted(self.excluded)
        )


def theme_error_rules(html_dir: Path) -> list[ClassRule]:
    """The rules of the built stylesheets that draw an "ERROR" text into the page."""
    rules = []
    for stylesheet in sorted((html_dir / "_static").rglob("*.css")):
        css = re.sub(r"/\*.*?\*/", "", stylesheet.read_text(encoding="utf-8"), flags=re.S)
        for match in _ERROR_RULE.finditer(css):
            for selector in (part.strip() for part in match.group(1).split(",")):
                parsed = _SELECTOR.match(selector)
                assert parsed, f"{stylesheet.name}: cannot check {selector!r}: extend the check"
                required: set[str] = set()
                excluded: set[str] = set()
                for negated, name in _SELECTOR_PART.findall(parsed.group(1)):
                    (excluded if negated else required).add(name)
                rules.append(ClassRule(selector, frozenset(required), frozenset(excluded)))
    return rules


def error_rules(html_dir: Path) -> list[tuple[ClassRule, str]]:
    """Every class rule of an error box, with what it means."""
    rules = [
        (ClassRule(f".{name}", frozenset({name}), frozenset()), why)
        for name, why in PROBLEM_CLASSES.items()
    ]
    rules.append(
        (ClassRule(".admonition.error", ERROR_ADMONITION, frozenset()), "an error admonition")
    )
    rules += [
        (rule, f"the theme's stylesheet writes an ERROR over it ({rule.selector})")
        for rule in theme_error_rules(html_dir)
    ]
    return rules


class _ClassParser(HTMLParser):
    """The classes of every element a browser running JavaScript shows.

    What sits inside ``<noscript>`` is left out: the search page's "please
    activate JavaScript" error box is only seen without JavaScript.
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[int, str, set[str]]] = []
        self._noscript = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "noscript":
            self._noscript += 1
        if self._noscript:
            return
        for name, value in attrs:
            if name == "class" and value:
                self.elements.append((self.getpos()[0], tag, set(value.split())))

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript" and self._noscript:
            self._noscript -= 1


def error_boxes(html_dir: Path) -> list[str]:
    """Every element of every built page that shows as an error, one line each."""
    rules = error_rules(html_dir)
    found = []
    for path in sorted(html_dir.rglob("*.html")):
        parser = _ClassParser()
        parser.feed(path.read_text(encoding="utf-8"))
        for line, tag, classes in parser.elements:
            for rule, why in rules:
                if rule.matches(classes):
                    where = f"{path.relative_to(html_dir)}:{line}"
                    found.append(f'{where}: <{tag} class="{" ".join(sorted(classes))}">: {why}')
    return found


def test_the_error_box_check_finds_what_docutils_and_furo_emit(broken_docs: Path) -> None:
    """On a page with each mistake, the check reports each: it can fail."""
    assert [rule.css for rule in theme_error_rules(broken_docs)] == [
        ".contents:not(.this-will-duplicate-information-and-it-is-still-useful-here)"
    ]
    found = "\n".join(error_boxes(broken_docs))
    assert re.search(r'index\.html:\d+: <nav class="contents local">: the theme', found), found
    assert '<aside class="system-message">' in found, found
    assert '<span class="problematic">' in found, found
    assert '<div class="admonition error">' in found, found


def test_no_page_shows_an_error_box(built_docs: Path) -> None:
    assert theme_error_rules(built_docs), "the theme's error rule was not found: check the check"
    found = error_boxes(built_docs)
    assert not found, "pages show error boxes:\n" + "\n".join(found)


# -- intersphinx ---------------------------------------------------------------

#: Links the pages must make into other projects' docs, by page.
EXTERNAL_LINKS = {
    "tutorial.html": [
        "https://docs.python.org/3/library/functools.html#functools.lru_cache",
        "https://flask.palletsprojects.com/en/stable/api/#flask.Flask",
        "https://flask.palletsprojects.com/en/stable/api/#flask.Flask.before_request",
    ],
    "never-cached.html": [
        "https://werkzeug.palletsprojects.com/en/stable/middleware/proxy_fix/"
        "#werkzeug.middleware.proxy_fix.ProxyFix",
    ],
    # Annotations autodoc writes link too.
    "api.html": [
        "https://docs.python.org/3/library/datetime.html#datetime.timedelta",
        "https://docs.python.org/3/library/collections.abc.html#collections.abc.Callable",
    ],
}


def test_intersphinx_references_link_to_the_external_docs(built_docs: Path) -> None:
    missing = []
    for name, expected in EXTERNAL_LINKS.items():
        links = set(read_page(built_docs / name).links)
        missing += [f"{name}: {url}" for url in expected if url not in links]
    assert not missing, "links not made:\n" + "\n".join(missing)


def _inventories_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_inventories", DOCS / "inventories.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while being defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_written_inventories_are_valid_sphinx_inventories(tmp_path: Path) -> None:
    _require("sphinx")
    from sphinx.util.inventory import InventoryFile

    mapping = _inventories_module().write_inventories(tmp_path)
    assert set(mapping) == {"python", "flask", "werkzeug"}
    expected = {
        "python": ("py:function", "functools.lru_cache", "library/functools.html"),
        "flask": ("py:class", "flask.app.Flask", "api/#flask.Flask"),
        "werkzeug": (
            "py:class",
            "werkzeug.middleware.proxy_fix.ProxyFix",
            "middleware/proxy_fix/#werkzeug.middleware.proxy_fix.ProxyFix",
        ),
    }
    for key, (base_url, path) in mapping.items():
        inventory = InventoryFile.loads(Path(path).read_bytes(), uri=base_url)
        assert len(inventory.data) >= 3, key
        for objects in inventory.data.values():
            for name, item in objects.items():
                assert item.uri.startswith(base_url), (key, name, item.uri)
        role, name, uri = expected[key]
        assert inventory.data[role][name].uri.startswith(base_url + uri), key


def _python_blocks() -> Iterator[tuple[str, int, str]]:
    for source in SOURCES:
        text = source.read_text()
        for match in _CODE_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            yield source.name, line, textwrap.dedent(match.group(2))


def test_python_examples_are_valid_python() -> None:
    blocks = list(_python_blocks())
    assert len(blocks) > 20, "the pattern no longer finds the examples"
    for name, line, code in blocks:
        try:
            ast.parse(code, filename=f"{name}:{line}")
        except SyntaxError as err:
            pytest.fail(f"{name}, example at line {line}: {err}", pytrace=False)
