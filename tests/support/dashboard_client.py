"""A browser's view of the dashboard for tests: a token, a cookie-only client, a page's
HTML and text (the same steps ``tests/integration/test_dashboard.py`` takes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any

import httpx


def make_token(http: httpx.Client, role: str, name: str = "dash") -> str:
    """A new API token of ``role``, made through the API (``http`` holds an admin's)."""
    response = http.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return str(created["token"])


@contextmanager
def signed_in(base_url: str | httpx.URL, token: str) -> Iterator[httpx.Client]:
    """A client without an API token, as a browser is (cookies only, no redirects),
    signed in with ``token``."""
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as browser:
        response = browser.post(
            "/dashboard/login",
            content=f"token={token}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 303, response.text
        yield browser


def html_of(browser: httpx.Client, path: str, status: int = 200) -> str:
    response = browser.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def text_of(html: str) -> str:
    """The page's text: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def device_ids(html: str) -> list[str]:
    """The ids of the devices linked from the page's devices table, in order."""
    table = html.split("<h2>Devices", 1)[-1]
    return re.findall(r'<td><a href="/dashboard/devices/([^"]+)">', table)
