"""Shared fixtures: headless Chromium for the browser tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _require_chromium() -> None:
    """Skip without a browser, except in CI, where a skipped browser test is a failure."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found: `sudo apt-get install chromium` to run the browser tests"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: browser tests may not be skipped)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium driven by Playwright (its own browser download is impossible offline)."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page that records console errors and uncaught exceptions in ``page.errors``."""
    context = chromium.new_context()
    page = context.new_page()
    page.errors = []
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()
