"""Fixtures of the browser tests: one Chromium for the session (``chromium``), a fresh
context and tab per test (``page``), and one control plane they share (``plane``: the
real app under uvicorn on SQLite, devices simulated with real protocol messages, MQTT in
memory; ``tests.support.rollout_plane``). Each test works in a fleet of its own, so the
tests do not see each other's rollouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, ViewportSize

from controlplane.publisher import MemoryPublisher
from tests.support.browser import launch_chromium, require_chromium
from tests.support.rollout_plane import Plane, open_plane
from tests.support.trust import make_trust_kit

#: the viewport of the desktop tests (the narrow-screen test sets its own)
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole session."""
    with launch_chromium(require_chromium()) as browser:
        yield browser


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    workdir = tmp_path_factory.mktemp("browser-plane")
    kit = make_trust_kit(workdir / "trust")
    url = f"sqlite:///{workdir / 'edgefleet.db'}"
    with open_plane(workdir, kit, url, MemoryPublisher()) as shared:
        yield shared


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A tab in a context of its own (no cookie of another test)."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def chromium_narrow(chromium: Browser) -> Iterator[Page]:
    """A tab 420 px wide, as on a phone."""
    context = chromium.new_context(viewport={"width": 420, "height": 900})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
