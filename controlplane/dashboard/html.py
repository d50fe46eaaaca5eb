"""A few HTML building blocks for the dashboard: every text goes through :func:`esc`.

The pages are plain server-rendered HTML (no script, one stylesheet), so a strict
Content-Security-Policy holds and a page works in any browser and in ``curl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote


class Markup(str):
    """HTML that was built from escaped parts; inserted as is."""


def esc(value: object) -> Markup:
    """``value`` as text in HTML (None as an em dash)."""
    if isinstance(value, Markup):
        return value
    return Markup("—" if value is None else escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(esc(sep).join(esc(p) for p in parts))


def link(href: str, text: object) -> Markup:
    """A link to one of the dashboard's own pages (``href`` built from quoted parts)."""
    return Markup(f'<a href="{escape(href, quote=True)}">{esc(text)}</a>')


def path_part(value: str) -> str:
    """``value`` quoted for one segment of a URL path."""
    return quote(value, safe="")


def badge(state: str | None, kind: str | None = None) -> Markup:
    """A coloured label; ``kind`` picks the colour (by default the state itself)."""
    css = "".join(c for c in (kind or state or "none") if c.isalnum() or c in "-_")
    return Markup(f'<span class="badge b-{css}">{esc(state)}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str) -> Markup:
    """A table in a box that scrolls sideways on its own (the page never does)."""
    body = ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    if not body:
        return Markup(f'<p class="empty">{esc(empty)}</p>')
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Markup(
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def facts(pairs: Iterable[tuple[str, object]]) -> Markup:
    """A two-column key / value list."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
    return Markup(f'<dl class="facts">{items}</dl>')


def section(title: str, body: Markup) -> Markup:
    return Markup(f"<section><h2>{esc(title)}</h2>{body}</section>")


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def utc(when: datetime) -> str:
    """``2026-12-06T12:56:42Z``: an absolute time, in UTC, to the second."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(seconds: float) -> str:
    """``2m 10s``, ``1h 5m``, ``3d 2h``, ``42s``: a duration, at most two units."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def when_text(when: datetime, text: str) -> Markup:
    """``text`` about the time ``when``, which shows on hover (and to machines)."""
    stamp = esc(utc(when))
    return Markup(f'<time datetime="{stamp}" title="{stamp}">{esc(text)}</time>')


def ago(when: datetime | None, now: datetime) -> Markup | None:
    """``12s ago``, ``4m ago``, ``3h ago``, ``2d ago``, its UTC time on hover (None stays
    None)."""
    if when is None:
        return None
    seconds = max(0, int((now - _utc(when)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return when_text(when, f"{seconds // size}{unit} ago")
    return when_text(when, f"{seconds}s ago")


def ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} ms"


def page(title: str, body: Markup, *, who: str | None = None, refresh_s: int | None = None) -> str:
    """A whole document; ``who`` (the signed-in token) adds the navigation bar."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    nav = ""
    if who is not None:
        nav = (
            '<nav><a class="home" href="/dashboard">EdgeFleet</a>'
            '<a href="/dashboard/cohorts">Cohorts</a>'
            '<a href="/dashboard/audit">Audit</a>'
            '<a href="/dashboard/alerts">Alerts</a>'
            f'<span class="who">signed in as {esc(who)}</span>'
            '<form method="post" action="/dashboard/logout">'
            '<button type="submit">Sign out</button></form></nav>'
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{esc(title)} · EdgeFleet</title>"
        '<link rel="stylesheet" href="/dashboard/style.css"></head>'
        f"<body>{nav}<main><h1>{esc(title)}</h1>{body}</main></body></html>\n"
    )
