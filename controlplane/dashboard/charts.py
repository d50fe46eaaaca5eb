"""Server-rendered SVG charts: a line chart over time and a grouped bar chart.

No script and no external library: each chart is an inline ``<svg>`` that scales to the
width of its container (``viewBox``), coloured by the stylesheet's ``.c0`` … ``.c3``
classes (the page's Content-Security-Policy allows no inline style). Every data point is
an element carrying ``data-series`` / ``data-value`` (and ``data-at`` or ``data-group``)
with a ``<title>`` that a browser shows on hover, so the figures stay readable and
testable without the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controlplane.dashboard.html import Markup, esc, utc

WIDTH = 640
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 10, 26, 26
#: Colour classes, one per series (the stylesheet defines them).
COLOURS = 4


def number(value: float) -> str:
    """Three significant figures, without a trailing ``.0``."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _clock(at: datetime, span_s: float) -> str:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%d %b %H:%M" if span_s > 86_400 else "%H:%M:%S")


@dataclass(frozen=True)
class Line:
    """One series of a line chart: ``(when, value)``, oldest first; None leaves a gap."""

    name: str
    points: Sequence[tuple[datetime, float | None]]


def _frame(title: str, unit: str, top: float, legend: Sequence[str]) -> list[str]:
    """The title, the legend, the y axis (0 .. ``top``) with its grid lines."""
    parts = [f"<title>{esc(title)}</title>"]
    parts.append(f'<text class="ct" x="{_LEFT}" y="14">{esc(title)}</text>')
    x = WIDTH - _RIGHT
    for i, name in reversed(list(enumerate(legend))):
        text = esc(name)
        x -= 14 + 7 * len(name)
        parts.append(f'<rect class="c{i % COLOURS}" x="{x}" y="6" width="9" height="9"/>')
        parts.append(f'<text class="cl" x="{x + 12}" y="14">{text}</text>')
    bottom = HEIGHT - _BOTTOM
    for k in range(3):
        value = top * k / 2
        y = bottom - (bottom - _TOP) * k / 2
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y}" y2="{y}"/>')
        label = esc(f"{number(value)} {unit}".strip())
        parts.append(
            f'<text class="cl" x="{_LEFT - 4}" y="{y + 4}" text-anchor="end">{label}</text>'
        )
    return parts


def _svg(kind: str, title: str, parts: Sequence[str]) -> Markup:
    return Markup(
        f'<figure class="chart"><svg class="chart {kind}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{esc(title)}" preserveAspectRatio="xMidYMid meet">'
        f"{''.join(parts)}</svg></figure>"
    )


def _top(values: Sequence[float]) -> float:
    highest = max(values, default=0.0)
    return highest * 1.1 if highest > 0 else 1.0


def line_chart(title: str, lines: Sequence[Line], *, unit: str) -> Markup:
    """Every line over one time axis; an empty note when no line has a value."""
    valued = [(t, v) for line in lines for t, v in line.points if v is not None]
    if not valued:
        return Markup(f'<p class="empty">{esc(title)}: no samples in this window.</p>')
    start = min(t for t, _ in valued)
    end = max(t for t, _ in valued)
    span = max((end - start).total_seconds(), 1.0)
    top = _top([v for _, v in valued])
    inner_w, inner_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def xy(at: datetime, value: float) -> tuple[float, float]:
        x = _LEFT + inner_w * (at - start).total_seconds() / span
        return round(x, 1), round(HEIGHT - _BOTTOM - inner_h * value / top, 1)

    parts = _frame(title, unit, top, [line.name for line in lines])
    bottom = HEIGHT - _BOTTOM + 16
    parts.append(f'<text class="cl" x="{_LEFT}" y="{bottom}">{esc(_clock(start, span))}</text>')
    end_label = esc(_clock(end, span) + " UTC")
    right = WIDTH - _RIGHT
    parts.append(f'<text class="cl" x="{right}" y="{bottom}" text-anchor="end">{end_label}</text>')
    for i, line in enumerate(lines):
        css = f"c{i % COLOURS}"
        run: list[str] = []
        runs: list[list[str]] = [run]
        for at, value in line.points:
            if value is None:
                run = []
                runs.append(run)
                continue
            x, y = xy(at, value)
            run.append(f"{x},{y}")
            tip = esc(f"{line.name}: {number(value)} {unit} at {utc(at)}")
            parts.append(
                f'<circle class="pt {css}" cx="{x}" cy="{y}" r="2.2" '
                f'data-series="{esc(line.name)}" data-at="{utc(at)}" data-value="{value:g}">'
                f"<title>{tip}</title></circle>"
            )
        for points in runs:
            if len(points) > 1:
                parts.insert(1, f'<polyline class="{css}" points="{" ".join(points)}"/>')
    return _svg("lines", title, parts)


def bar_chart(
    title: str,
    groups: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    *,
    unit: str,
) -> Markup:
    """One group of bars per ``(label, values)`` (one value per ``series``; None: no bar)."""
    values = [v for _, vs in groups for v in vs if v is not None]
    if not values:
        return Markup(f'<p class="empty">{esc(title)}: no figures yet.</p>')
    top = _top(values)
    inner_w, inner_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = inner_w / max(len(groups), 1)
    bar = max(min(slot * 0.8 / max(len(series), 1), 40.0), 2.0)
    parts = _frame(title, unit, top, series)
    for g, (label, group_values) in enumerate(groups):
        left = _LEFT + slot * g + (slot - bar * len(series)) / 2
        for s, value in enumerate(group_values):
            if value is None:
                continue
            height = round(inner_h * value / top, 1)
            x = round(left + bar * s, 1)
            y = round(HEIGHT - _BOTTOM - height, 1)
            tip = esc(f"{label}, {series[s]}: {number(value)} {unit}")
            parts.append(
                f'<rect class="bar c{s % COLOURS}" x="{x}" y="{y}" width="{round(bar, 1)}" '
                f'height="{max(height, 0.5)}" data-series="{esc(series[s])}" '
                f'data-group="{esc(label)}" data-value="{value:g}"><title>{tip}</title></rect>'
            )
        middle = round(_LEFT + slot * g + slot / 2, 1)
        parts.append(
            f'<text class="cl" x="{middle}" y="{HEIGHT - _BOTTOM + 16}" text-anchor="middle">'
            f"{esc(label)}</text>"
        )
    return _svg("bars", title, parts)
