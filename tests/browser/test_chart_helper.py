"""The helpers the chart tests use: the PNG decoder (each row filter, against pixels
known in advance and against Chromium's own screenshots) and ``assert_chart_renders``
(a drawn chart passes, a blank one or one without data points fails; and on a dashboard
element that exists today)."""

from __future__ import annotations

import struct
import zlib

import pytest
from playwright.sync_api import Page

from tests.support.browser import new_token, sign_in
from tests.support.charts import assert_chart_renders
from tests.support.png import Pixels, decode_png, decode_png_by_hand
from tests.support.rollout_plane import Plane


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    """What each PNG filter predicts a byte from (written out apart from the decoder's)."""
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    estimate = left + up - corner
    distances = [abs(estimate - left), abs(estimate - up), abs(estimate - corner)]
    return (left, up, corner)[distances.index(min(distances))]


def _encode(rows: list[bytes], width: int, colour: int, bpp: int, filters: list[int]) -> bytes:
    """A PNG of ``rows``, row ``y`` filtered with ``filters[y]``."""
    raw = bytearray()
    prev = bytes(len(rows[0]))
    for row, kind in zip(rows, filters, strict=True):
        raw.append(kind)
        for i, value in enumerate(row):
            left = row[i - bpp] if i >= bpp else 0
            corner = prev[i - bpp] if i >= bpp else 0
            raw.append((value - _predict(kind, left, prev[i], corner)) & 0xFF)
        prev = row
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("colour", "bpp"), [(2, 3), (6, 4), (0, 1)])
def test_the_decoder_undoes_every_row_filter(colour: int, bpp: int) -> None:
    width = 7
    rows = [
        bytes((x * x * 13 + y * 29 + c * 53) % 256 for x in range(width) for c in range(bpp))
        for y in range(10)
    ]
    filters = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    image = decode_png_by_hand(_encode(rows, width, colour, bpp, filters))
    assert (image.width, image.height, image.channels) == (width, 10, bpp)
    assert image.data == b"".join(rows)
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png_by_hand(b"GIF89a")


#: a small chart as the chart pages draw them: a line, and one circle per data point
_CHART = """
<svg id="chart" width="320" height="120" viewBox="0 0 320 120">
  <path d="M10 100 L160 20 L310 60" fill="none" stroke="#0969da" stroke-width="2"/>
  <circle data-value="1.5" cx="10" cy="100" r="3" fill="#0969da"/>
  <circle data-value="9.0" cx="160" cy="20" r="3" fill="#0969da"/>
  <circle data-value="4.2" cx="310" cy="60" r="3" fill="#0969da"/>
</svg>
<svg id="blank" width="320" height="120"><circle data-value="1" r="0"/></svg>
<svg id="unlabelled" width="320" height="120">
  <path d="M10 100 L310 60" stroke="#0969da" stroke-width="2"/>
</svg>
<div id="solid" style="width: 40px; height: 10px; background: rgb(200, 30, 90)"></div>
"""


@pytest.mark.browser
def test_the_decoder_reads_chromium_screenshots(page: Page) -> None:
    page.set_content(_CHART)
    solid = decode_png_by_hand(page.locator("#solid").screenshot())
    assert (solid.width, solid.height) == (40, 10)
    assert {colour[:3] for colour in solid.colours()} == {bytes((200, 30, 90))}
    for decode in (decode_png_by_hand, decode_png):  # decode_png: Pillow's, if installed
        chart = decode(page.locator("#chart").screenshot())
        assert (chart.width, chart.height) == (320, 120)

        def pixel(x: int, y: int, chart: Pixels = chart) -> bytes:
            at = (y * chart.width + x) * chart.channels
            return chart.data[at : at + 3]

        assert pixel(160, 20) == bytes((0x09, 0x69, 0xDA))  # a data point's centre
        assert pixel(2, 2) == pixel(317, 117) == bytes((255, 255, 255))  # the page


@pytest.mark.browser
def test_assert_chart_renders_tells_a_chart_from_a_blank_box(page: Page) -> None:
    page.set_content(_CHART)
    assert assert_chart_renders(page, "#chart", min_points=3) == 3
    with pytest.raises(AssertionError, match="blank"):
        assert_chart_renders(page, "#blank")
    with pytest.raises(AssertionError, match="0 data point"):
        assert_chart_renders(page, "#unlabelled")


@pytest.mark.browser
def test_assert_chart_renders_on_a_dashboard_element(page: Page, plane: Plane) -> None:
    """``points`` picks what counts as a data point: here the rows of the rollout page's
    batch table (the charts themselves: ``test_dashboard_charts.py``)."""
    plane.fleet_on_v1(2, fleet="charting", prefix="ch")
    rid = plane.start({"canary": 1, "batches": 1}, fleet="charting")["id"]
    base = str(plane.http.base_url).rstrip("/")
    sign_in(page, base, new_token(plane.http, "viewer", "charts"))
    page.goto(f"{base}/dashboard/rollouts/{rid}")
    batches = "section:has(> h2:text-is('Batches')) table"
    assert assert_chart_renders(page, batches, points="tbody tr", min_points=2) == 2
