"""The documentation builds cleanly, and every link and reference in it resolves.

Sphinx runs once per session, in a subprocess (so its own warnings never meet
pytest's ``filterwarnings = error``), with ``-W -n``: any warning fails the
build, and nitpicky mode turns a cross-reference that does not resolve into
a warning. The other tests then read the sources and the built pages, with
no network: ``:doc:`` and ``:ref:`` targets, internal links and anchors, and
the syntax of every Python example.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .servers import servers_required

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCES = sorted(DOCS.glob("*.rst"))

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


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML docs with warnings as errors; return the output directory."""
    _require("sphinx")
    _require("furo")
    root = tmp_path_factory.mktemp("docs")
    out, doctrees = root / "html", root / "doctrees"
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-n",
        "-q",
        "-b",
        "html",
        "-d",
        str(doctrees),
        str(DOCS),
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"sphinx-build failed (exit {done.returncode}):\n{done.stderr}{done.stdout}",
            pytrace=False,
        )
    return out


def test_docs_build_without_warnings(built_docs: Path) -> None:
    for source in SOURCES:
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
            found = (DOCS / f"{target.lstrip('/')}.rst").is_file()
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


def test_architecture_notes_are_published(built_docs: Path) -> None:
    """The index links to architecture.md, which is copied next to the pages."""
    assert (built_docs / "architecture.md").read_text() == (DOCS / "architecture.md").read_text()
    assert "architecture.md" in read_page(built_docs / "index.html").links


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
