"""The dashboard's HTML helpers: escaping, class names, relative times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from controlplane.dashboard.html import (
    Markup,
    ago,
    badge,
    esc,
    facts,
    link,
    page,
    span,
    table,
    utc,
)
from controlplane.dashboard.pages import device_page
from controlplane.models import Device
from controlplane.views import device_public

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_text_is_escaped_and_markup_is_not() -> None:
    assert esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    assert esc(None) == "—" and esc(3) == "3"
    built = Markup("<b>ok</b>")
    assert esc(built) is built
    cells = table(["a"], [["<i>"], [built]], empty="none")
    assert "<td>&lt;i&gt;</td>" in cells and "<td><b>ok</b></td>" in cells
    assert cells.startswith('<div class="scroll"><table>')  # scrolls in its own box
    assert facts([("k<", "v>")]) == '<dl class="facts"><dt>k&lt;</dt><dd>v&gt;</dd></dl>'


def test_links_badges_and_empty_tables() -> None:
    assert link('/dashboard?fleet=a"b', "<x>") == (
        '<a href="/dashboard?fleet=a&quot;b">&lt;x&gt;</a>'
    )
    assert badge("rolled_back") == '<span class="badge b-rolled_back">rolled_back</span>'
    assert (
        badge('x" onclick="y') == '<span class="badge b-xonclicky">x&quot; onclick=&quot;y</span>'
    )
    assert table(["a"], [], empty="No <rows>.") == '<p class="empty">No &lt;rows&gt;.</p>'


def _shown(when: datetime) -> str:
    return f'<time datetime="{utc(when)}" title="{utc(when)}">'


def test_relative_times_carry_their_utc_time() -> None:
    assert ago(None, NOW) is None
    twelve = NOW - timedelta(seconds=12)
    assert ago(twelve, NOW) == f"{_shown(twelve)}12s ago</time>"
    assert utc(twelve) == "2026-12-01T11:59:48Z"
    for when, text in [
        (NOW - timedelta(minutes=4, seconds=59), "4m ago"),
        (NOW - timedelta(hours=3), "3h ago"),
        (NOW - timedelta(days=2, hours=5), "2d ago"),
        (NOW + timedelta(seconds=5), "0s ago"),  # a clock a little ahead
    ]:
        assert ago(when, NOW) == f"{_shown(when)}{text}</time>"
    naive = datetime(2026, 12, 1, 11, 59)  # naive: UTC
    assert ago(naive, NOW) == '<time datetime="2026-12-01T11:59:00Z" ' + (
        'title="2026-12-01T11:59:00Z">1m ago</time>'
    )
    assert utc(datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-12-01T12:00:00Z"
    )


def test_durations_have_at_most_two_units() -> None:
    assert [span(s) for s in (0, 5, 60, 130, 3600, 3725, 90000, -3)] == [
        "0s",
        "5s",
        "1m",
        "2m 10s",
        "1h",
        "1h 2m",
        "1d 1h",
        "0s",
    ]


def test_page_title_is_escaped_and_nav_only_when_signed_in() -> None:
    signed_out = page("<T>", Markup("<p>x</p>"))
    assert "<title>&lt;T&gt; · EdgeFleet</title>" in signed_out and "<nav>" not in signed_out
    signed_in = page("T", Markup(""), who="ops <x>", refresh_s=5)
    assert "signed in as ops &lt;x&gt;" in signed_in
    assert '<meta http-equiv="refresh" content="5">' in signed_in


def test_a_pin_a_device_cannot_honour_shows_on_its_page() -> None:
    """Issue 13.7: the device's answer to its pin, with why, on the dashboard."""
    device = Device(
        id="d1",
        fleet="f",
        generation=4,
        reported_generation=4,
        backend="onnxruntime:CPUExecutionProvider:f32",
        active_model="det",
        active_version="1.0.0",
        last_error="pinned backend openvino:CPU:bf16 is not available here",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    html = str(device_page(device_public(device, "openvino:CPU:bf16"), now=datetime.now(UTC)))
    assert (
        "openvino:CPU:bf16 (fleet), not honoured: pinned backend openvino:CPU:bf16 is not "
        "available here (runs onnxruntime:CPUExecutionProvider:f32)"
    ) in html
    device.reported_generation = 3  # the device has not processed its latest command
    html = str(device_page(device_public(device, "openvino:CPU:bf16"), now=datetime.now(UTC)))
    assert "openvino:CPU:bf16 (fleet), waiting" in html
