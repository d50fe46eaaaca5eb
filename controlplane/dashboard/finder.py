"""Finding devices on the dashboard: the filters of ``GET /dashboard`` (a plain GET form),
read into a :class:`controlplane.paging.DeviceFilter`, and the links between pages.

The query parameters: ``q`` (a part of the device id), ``fleet``, ``status``, ``version``
(the version it serves), ``online`` (``yes``/``no``), ``profile`` (hardware profile),
``label`` (``k=v,k2=v2``), ``limit`` (devices a page, at most :data:`MAX_PER_PAGE`) and
``after`` (the last device id of the page before). An empty field is no filter, so the
form can send every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from controlplane.dashboard.html import Markup, esc, join, link
from controlplane.paging import DeviceFilter
from controlplane.selectors import format_selector, parse_selector
from protocol.reports import DeviceStatus

#: the filter fields, in the form's order, with their placeholders
_TEXT_FIELDS = (
    ("q", "device id contains"),
    ("fleet", "fleet"),
    ("version", "version served"),
    ("profile", "hardware profile"),
    ("label", "labels k=v,k2=v2"),
)
#: what a device's status can be (``unknown``: it never reported one)
STATUSES = ("unknown", *(s.value for s in DeviceStatus))
_ONLINE = {"yes": True, "no": False}
#: the longest value a filter field takes
MAX_FIELD = 128
#: devices a page, unless ``limit`` says otherwise, and the most it may say
PER_PAGE = 200
MAX_PER_PAGE = 1000


class BadFilter(ValueError):
    """A filter field the list cannot use (its message is one line for the page)."""


@dataclass(frozen=True)
class Finder:
    """The filters as asked (``fields``: the non-empty fields, for the links) and read."""

    fields: dict[str, str]
    wanted: DeviceFilter
    #: devices a page
    limit: int = PER_PAGE


def read(params: Mapping[str, str]) -> Finder:
    """The filters in ``params`` (a request's query); :class:`BadFilter` if one is bad."""
    fields = {}
    for name in ("q", "fleet", "status", "version", "online", "profile", "label", "limit"):
        value = (params.get(name) or "").strip()
        if len(value) > MAX_FIELD:
            raise BadFilter(f"{name} is longer than {MAX_FIELD} characters")
        if value:
            fields[name] = value
    if fields.get("online", "yes") not in _ONLINE:
        raise BadFilter(f"online must be yes or no, not {fields['online']!r}")
    limit = fields.get("limit", str(PER_PAGE))
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_PER_PAGE:
        raise BadFilter(f"limit must be a whole number from 1 to {MAX_PER_PAGE}, not {limit!r}")
    try:
        selector = parse_selector(fields.get("label"))
    except ValueError as exc:
        raise BadFilter(f"label: {exc}") from exc
    if selector:
        fields["label"] = format_selector(selector)
    online = fields.get("online")
    wanted = DeviceFilter(
        fleet=fields.get("fleet"),
        status=fields.get("status"),
        version=fields.get("version"),
        online=None if online is None else _ONLINE[online],
        profile=fields.get("profile"),
        selector=selector,
        search=fields.get("q"),
    )
    return Finder(fields, wanted, int(limit))


def href(fields: Mapping[str, str], after: str | None = None) -> str:
    """The dashboard with these filters (and the page after ``after``)."""
    query = urlencode({**fields, **({"after": after} if after else {})})
    return f"/dashboard?{query}" if query else "/dashboard"


def _select(name: str, options: list[tuple[str, str]], chosen: str | None) -> Markup:
    items = "".join(
        f'<option value="{esc(value)}"{" selected" if value == (chosen or "") else ""}>'
        f"{esc(text)}</option>"
        for value, text in options
    )
    return Markup(f'<select name="{name}" aria-label="{name}">{items}</select>')


def form(fields: Mapping[str, str]) -> Markup:
    """The GET form of the filters, filled with ``fields``."""
    inputs = [
        Markup(
            f'<input name="{name}" value="{esc(fields.get(name, ""))}" '
            f'placeholder="{esc(hint)}" aria-label="{esc(hint)}" maxlength="{MAX_FIELD}">'
        )
        for name, hint in _TEXT_FIELDS
    ]
    status = _select(
        "status", [("", "any status"), *((s, s) for s in STATUSES)], fields.get("status")
    )
    online = _select(
        "online",
        [("", "online or not"), ("yes", "online"), ("no", "offline")],
        fields.get("online"),
    )
    if "limit" in fields:  # the page size chosen stays
        inputs.append(Markup(f'<input type="hidden" name="limit" value="{esc(fields["limit"])}">'))
    clear = link("/dashboard", "clear") if fields else Markup("")
    return Markup(
        '<form class="filters" method="get" action="/dashboard">'
        f'{join([*inputs, status, online])}<button type="submit">Find</button> {clear}</form>'
    )


def pager(fields: Mapping[str, str], *, after: str | None, next_after: str | None) -> Markup:
    """Links to the first page (when this is a later one) and to the next one."""
    links = []
    if after is not None:
        links.append(link(href(fields), "← first devices"))
    if next_after is not None:
        links.append(link(href(fields, next_after), "next devices →"))
    if not links:
        return Markup("")
    return Markup(f'<p class="pager">{join(links, " · ")}</p>')
