"""Debian's headless Chromium, driven by selenium, for the browser tests.

Locally a missing Chromium, chromedriver or selenium skips with a reason;
under CI (``CI`` or ``FLASK_STASH_REQUIRE_SERVERS`` set) it fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .servers import require_binary, servers_required

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

#: What Debian's Chromium needs to run headless as root on this machine.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1000,1200",
)


def chromium(profile: Path, *, console_log: bool = False) -> Iterator[WebDriver]:
    """A headless Chromium with a new profile in *profile*, quit when done.

    With *console_log*, the page's console messages can be read back
    (``driver.get_log("browser")``).
    """
    binary = require_binary("chromium", "/usr/bin/chromium")
    chromedriver = require_binary("chromedriver", "/usr/bin/chromedriver")
    if servers_required():
        import selenium  # noqa: F401 - fail loudly under CI
    else:
        pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given, so selenium never looks for (or downloads) a driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
