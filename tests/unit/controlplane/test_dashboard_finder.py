"""The dashboard's device filters: query parameters read into a ``DeviceFilter``, and the
links between pages that keep them."""

from __future__ import annotations

from html import unescape

import pytest

from controlplane.dashboard.finder import PER_PAGE, BadFilter, form, href, pager, read
from controlplane.paging import DeviceFilter


def test_empty_fields_are_no_filter() -> None:
    found = read({"q": "", "fleet": " ", "status": "", "online": "", "label": ""})
    assert found.fields == {} and found.wanted == DeviceFilter() and found.limit == PER_PAGE
    assert found.wanted.is_empty()


def test_every_field_is_read() -> None:
    found = read(
        {
            "q": "cam",
            "fleet": "store-eu",
            "status": "failed",
            "version": "1.4.0",
            "online": "no",
            "profile": "xeon-amx",
            "label": " site = north , hw=arm ",
            "limit": "25",
        }
    )
    assert found.wanted == DeviceFilter(
        fleet="store-eu",
        status="failed",
        version="1.4.0",
        online=False,
        profile="xeon-amx",
        selector={"site": "north", "hw": "arm"},
        search="cam",
    )
    assert found.limit == 25
    assert found.fields["label"] == "hw=arm,site=north"  # the selector, written one way
    assert read({"online": "yes"}).wanted.online is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"online": "maybe"}, "online must be yes or no, not 'maybe'"),
        ({"label": "site"}, "label: invalid selector term 'site': expected key=value"),
        ({"limit": "0"}, "limit must be a whole number from 1 to 1000, not '0'"),
        ({"limit": "lots"}, "limit must be a whole number from 1 to 1000, not 'lots'"),
        ({"q": "x" * 129}, "q is longer than 128 characters"),
    ],
)
def test_a_bad_field_is_one_line(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadFilter) as caught:
        read(params)
    assert str(caught.value) == message


def test_links_keep_the_filters() -> None:
    fields = {"fleet": "a b", "label": "k=v"}
    assert href({}) == "/dashboard"
    assert href(fields, "d-9") == "/dashboard?fleet=a+b&label=k%3Dv&after=d-9"
    links = unescape(pager(fields, after="d-1", next_after="d-9"))
    assert '<a href="/dashboard?fleet=a+b&label=k%3Dv">← first devices</a>' in links
    assert '<a href="/dashboard?fleet=a+b&label=k%3Dv&after=d-9">next devices →</a>' in links
    assert pager(fields, after=None, next_after=None) == ""


def test_the_form_shows_what_was_asked_escaped() -> None:
    shown = form({"q": '"><script>', "status": "failed", "online": "no", "limit": "5"})
    assert 'name="q" value="&quot;&gt;&lt;script&gt;"' in shown
    assert '<option value="failed" selected>' in shown
    assert '<option value="no" selected>offline</option>' in shown
    assert '<input type="hidden" name="limit" value="5">' in shown
    assert 'method="get" action="/dashboard"' in shown
