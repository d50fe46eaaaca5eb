"""The dashboard's HTML helpers: escaping, class names, relative times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controlplane.dashboard.html import Markup, ago, badge, esc, facts, link, page, table
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


def test_relative_times() -> None:
    assert ago(None, NOW) is None
    assert ago(NOW - timedelta(seconds=12), NOW) == "12s ago"
    assert ago(NOW - timedelta(minutes=4, seconds=59), NOW) == "4m ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert ago(NOW - timedelta(days=2, hours=5), NOW) == "2d ago"
    assert ago(NOW + timedelta(seconds=5), NOW) == "0s ago"  # a clock a little ahead
    assert ago(datetime(2026, 12, 1, 11, 59), NOW) == "1m ago"  # naive: UTC


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
