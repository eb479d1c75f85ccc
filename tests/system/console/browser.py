"""Debian's headless Chromium, driven by Selenium through Debian's chromedriver: no browser or
driver is downloaded (no Selenium Manager)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 15.0  # bound on any wait for the page
T = TypeVar("T")


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium; its console messages are kept (``browser`` log)."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # nothing but the page's own requests
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll ``check`` until it gives something truthy (bounded); that value."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except Exception as exc:  # noqa: BLE001 - the DOM moves under a poll: try again
            last = exc
        time.sleep(0.05)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last error: {last})" if last else "")
    )


def element(driver: webdriver.Chrome, css: str, timeout: float = WAIT) -> WebElement:
    """The first element matching ``css`` once it is there and displayed."""

    def find() -> WebElement | None:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and found[0].is_displayed() else None

    return wait_for(find, f"an element {css!r}", timeout)


def sign_in(driver: webdriver.Chrome, base: str, token: str) -> None:
    """Sign in to the console with the admin token, through its form."""
    driver.get(f"{base}/console/login")
    element(driver, "#token").send_keys(token)
    element(driver, "#sign-in").click()
    wait_for(lambda: driver.current_url.endswith("/console/overview"), "the overview")


def severe_messages(driver: webdriver.Chrome, allowed: tuple[str, ...] = ()) -> list[str]:
    """The browser console's SEVERE messages since the last call, except those naming one of
    ``allowed``."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [
        e["message"]
        for e in entries
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]
