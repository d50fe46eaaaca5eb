"""Debian's Chromium driven by Playwright, for the browser tests (``tests/browser``).

Never a browser download: Playwright launches ``/usr/bin/chromium`` (``scripts/chromium.sh``
installs it; ``EDGEFLEET_CHROMIUM`` names another). Without it a browser test is skipped,
unless ``EDGEFLEET_REQUIRE_BROWSER=1`` (set by ``make test``): then it fails, so CI never
passes by skipping. Screenshots go to :data:`SCREENSHOTS` (``build/`` is git-ignored)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.paths import REPO

REQUIRE_ENV = "EDGEFLEET_REQUIRE_BROWSER"
#: where the browser tests keep their screenshots (a test run's artifacts)
SCREENSHOTS = REPO / "build" / "test-artifacts" / "screenshots"


def chromium_path() -> Path:
    return Path(os.environ.get("EDGEFLEET_CHROMIUM", "/usr/bin/chromium"))


def require_chromium() -> Path:
    """The Chromium binary; skip (or fail, with ``EDGEFLEET_REQUIRE_BROWSER=1``) without it."""
    path = chromium_path()
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"no Chromium at {path} (bash scripts/chromium.sh installs Debian's chromium)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


@contextmanager
def launch_chromium(path: Path) -> Iterator[Browser]:
    """One headless Chromium (Playwright's own browsers are never downloaded or used)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Keep a screenshot of the page as ``SCREENSHOTS/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Sign in through the login form, as an operator does, and land on the overview."""
    page.goto(f"{base_url}/dashboard/login")
    expect(page.get_by_label("API token")).to_be_focused()  # autofocus
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("nav .who")).to_contain_text("signed in as")


def new_token(http: httpx.Client, role: str, name: str) -> str:
    """A fresh API token of ``role`` (made with the admin client ``http``)."""
    response = http.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token
