"""The demo's statistics page in a real headless Chromium: the chart draws.

The demo runs on werkzeug's server in a thread, on a free port. Locally a
missing Chromium, chromedriver or selenium skips with a reason; under CI
(``CI`` or ``FLASK_STASH_REQUIRE_SERVERS`` set) it fails instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.serving import make_server

from flask_stash.demo import create_app

from .browser import chromium
from .servers import free_port

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.fixture
def demo_url() -> Iterator[str]:
    """The demo app served over real HTTP in a thread."""
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    yield from chromium(tmp_path / "profile", console_log=True)


def test_stats_page_draws_the_hit_ratio_chart(
    demo_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # The demo sends Cache-Control, so the browser would answer repeat
    # visits from its own cache; this test counts what reaches the server.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    # Two seconds of traffic: one miss then hits, then only hits.
    for _ in range(3):
        browser.get(f"{demo_url}/?name=a")
    # On a loaded machine the document can still be coming in when get() returns.
    WebDriverWait(browser, 15).until(lambda _: "Hello, a!" in browser.page_source)
    time.sleep(1.1)
    for _ in range(2):
        browser.get(f"{demo_url}/?name=a")

    browser.get(f"{demo_url}/stats")
    chart = browser.find_element(By.ID, "hit-ratio-chart")
    WebDriverWait(browser, 15).until(lambda _: int(chart.get_attribute("data-points") or 0) >= 2)

    dots = browser.find_elements(By.CSS_SELECTOR, "#hit-ratio-points circle")
    assert len(dots) >= 2
    path = browser.find_element(By.ID, "hit-ratio-line").get_attribute("d") or ""
    assert path.startswith("M")
    assert path.count("L") >= 1
    # Drawn inside the plot: the last second was all hits, so its dot is at 100%.
    for dot in dots:
        assert 44 <= float(dot.get_attribute("cx") or -1) <= 630
        assert 12 <= float(dot.get_attribute("cy") or -1) <= 194
    assert float(dots[-1].get_attribute("cy") or -1) == pytest.approx(12, abs=0.5)
    assert not browser.find_element(By.ID, "hit-ratio-empty").is_displayed()
    # The counters table was filled in from /stats.json too.
    assert browser.find_element(By.ID, "total-hits").text == "4"

    log: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [entry for entry in log if entry.get("level") == "SEVERE"]
    assert errors == []

    shot = tmp_path / "stats.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
