"""Does a chart render in the browser? Its pixels and its data points.

``assert_chart_renders(page, selector)`` screenshots the element and decodes the PNG
(:mod:`tests.support.png`): it must not be one flat colour (a blank box, an empty SVG).
And the element must hold its data points: elements with a ``data-value`` attribute by
default (the SVG ``circle``/``path``/``rect`` a chart draws per point), ``points`` says
otherwise."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.png import decode_png

#: a chart's data points: one element per point, carrying its value
DATA_POINTS = "[data-value]"


def assert_chart_renders(
    page: Page,
    selector: str,
    *,
    points: str = DATA_POINTS,
    min_points: int = 1,
    min_ink: int = 20,
) -> int:
    """Assert the element at ``selector`` is visible, not one flat colour (at least
    ``min_ink`` pixels differ from its most common colour) and holds ``min_points`` data
    points or more (``points``, a selector inside it). Returns the number of points."""
    chart = page.locator(selector)
    expect(chart).to_have_count(1)
    expect(chart).to_be_visible()
    pixels = decode_png(chart.screenshot(animations="disabled"))
    assert pixels.width > 0 and pixels.height > 0, f"{selector}: an empty box"
    colours = pixels.colours()
    background, count = colours.most_common(1)[0]
    ink = pixels.width * pixels.height - count
    assert ink >= min_ink, (
        f"{selector}: blank ({pixels.width}x{pixels.height} px, {len(colours)} colour(s), "
        f"{ink} px off the background #{background.hex()})"
    )
    found = chart.locator(points).count()
    assert found >= min_points, f"{selector}: {found} data point(s) ({points}), {min_points}+"
    return found
