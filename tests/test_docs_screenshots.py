"""Built docs pages in a real headless Chromium: none shows an error box.

The built HTML is served by ``http.server`` in a thread, on a free port. For
each page the browser is asked which visible elements are error boxes: the
classes ``test_docs.py`` looks for in the HTML, and any element the
stylesheets write an "ERROR" text into (read from the computed style of its
``::before`` and ``::after``, so a theme's rule is caught even if the HTML
check does not know it). A screenshot of each page is saved under the test's
``tmp_path`` and checked to be the size of the window and not blank.

The same check run on a page built with a ``contents`` directive must find
Furo's error box, so it can fail. Locally a missing Chromium, chromedriver
or selenium skips with a reason; under CI (``CI`` or
``FLASK_STASH_REQUIRE_SERVERS`` set) it fails instead.
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .browser import chromium
from .servers import free_port
from .test_docs import build_broken_docs, build_docs, error_rules

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

#: The pages photographed, with the title each must show.
PAGES = {
    "index.html": "Flask-Stash",
    "configuration.html": "Configuration",
    "architecture.html": "Architecture",
}

#: Returns, for the selectors given, the visible elements that match them,
#: and every visible element whose ::before or ::after shows "ERROR".
_FIND_ERROR_BOXES = """
const selectors = arguments[0];
const visible = (el) => {
  const style = getComputedStyle(el);
  return el.getClientRects().length > 0 && style.visibility !== "hidden"
    && style.display !== "none";
};
const describe = (el, why) =>
  `<${el.tagName.toLowerCase()} class="${el.className}">: ${why}: `
  + el.textContent.trim().slice(0, 60);
const found = [];
for (const selector of selectors) {
  for (const el of document.querySelectorAll(selector)) {
    if (visible(el)) found.push(describe(el, selector));
  }
}
for (const el of document.body.querySelectorAll("*")) {
  for (const pseudo of ["::before", "::after"]) {
    const content = getComputedStyle(el, pseudo).content || "";
    if (content.includes("ERROR") && visible(el)) {
      found.push(describe(el, pseudo + " " + content.slice(0, 80)));
    }
  }
}
return found;
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_docs(tmp_path_factory)


@pytest.fixture(scope="module")
def docs_url(built_docs: Path) -> Iterator[str]:
    yield from _serve(built_docs)


@pytest.fixture(scope="module")
def broken_docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(build_broken_docs(tmp_path_factory))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    yield from chromium(tmp_path_factory.mktemp("chromium-profile"))


def _selectors(html_dir: Path) -> list[str]:
    return [rule.css for rule, _ in error_rules(html_dir)]


def _open(browser: WebDriver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 15).until(
        lambda _: browser.execute_script("return document.readyState") == "complete"
    )


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and pixels of an 8-bit RGB or RGBA PNG, without a library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, header, compressed = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8, depth
    assert color in (2, 6), color
    assert interlace == 0
    size = 3 if color == 2 else 4
    stride = width * size
    raw = zlib.decompress(compressed)
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        rows.append(line)
        previous = line
    pixels = [bytes(row[x : x + 3]) for row in rows for x in range(0, stride, size)]
    return width, height, pixels


def _check_screenshot(browser: WebDriver, shot: Path) -> None:
    """The screenshot is a PNG of the window's size, with a page drawn in it."""
    assert browser.save_screenshot(str(shot))
    width, height, pixels = _png_pixels(shot.read_bytes())
    view_width, view_height, ratio = browser.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio]"
    )
    assert (width, height) == (round(view_width * ratio), round(view_height * ratio))
    assert width >= 800
    colors = Counter(pixels)
    # Text, code and the sidebar: many colours, and no single one fills the page.
    assert len(colors) > 50, f"{shot.name}: {len(colors)} colours, the page looks blank"
    assert colors.most_common(1)[0][1] < 0.97 * len(pixels), f"{shot.name} is nearly one colour"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_shows_no_error_box(
    page: str, built_docs: Path, docs_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, f"{docs_url}/{page}")
    title = browser.find_element(By.CSS_SELECTOR, "article h1")
    assert title.is_displayed()
    assert title.text.strip() == PAGES[page]

    found = browser.execute_script(_FIND_ERROR_BOXES, _selectors(built_docs))
    assert found == [], f"{page} shows error boxes:\n" + "\n".join(found)

    _check_screenshot(browser, tmp_path / page.replace(".html", ".png"))


def test_the_browser_check_sees_furos_error_box(
    tmp_path_factory: pytest.TempPathFactory,
    broken_docs_url: str,
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    """On a page with a contents directive, the same check finds the red box."""
    _open(browser, f"{broken_docs_url}/index.html")
    html_dir = build_broken_docs(tmp_path_factory)
    found = "\n".join(browser.execute_script(_FIND_ERROR_BOXES, _selectors(html_dir)))
    # Found once by its class and once by the text the stylesheet writes.
    assert '<nav class="contents local">: .contents:not(' in found, found
    assert '<nav class="contents local">: ::before "ERROR: Adding a table of contents' in found
    assert '<aside class="system-message">: .system-message' in found, found
    assert '<div class="admonition error">: .admonition.error' in found, found
    _check_screenshot(browser, tmp_path / "broken.png")
