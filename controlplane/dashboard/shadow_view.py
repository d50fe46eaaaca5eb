"""Shadow periods on the dashboard: a device's latest period of each model, a rollout
device's period and a batch's summary, in words (``protocol.ShadowFigures``)."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.dashboard.html import Markup, badge, ms, table
from controlplane.schemas import ShadowBatchPublic
from protocol import ShadowFigures


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}%"


def _dev(value: float | None) -> str | None:
    return None if value is None else f"{value:.3g}"


def shadows_table(shadows: Sequence[ShadowFigures]) -> Markup:
    """The device page's table: one row per model's latest shadow period."""
    rows = [
        [
            s.name,
            f"{s.version} beside {s.serving_version}",
            badge(s.verdict.value),
            f"{s.compared} of {s.sampled} sampled ({s.sample * 100:g}%), {s.dropped} dropped",
            _pct(s.agreement_pct),
            _pct(s.top1_agreement_pct),
            _dev(s.max_deviation),
            _dev(s.mean_deviation),
            f"{ms(s.shadow_p50_ms) or '-'} / {ms(s.shadow_p99_ms) or '-'}",
            f"{ms(s.serving_p50_ms) or '-'} / {ms(s.serving_p99_ms) or '-'}",
            s.reason,
        ]
        for s in shadows
    ]
    headers = ["model", "version", "verdict", "requests", "agreement", "top-1"]
    headers += ["max dev", "mean dev", "shadow p50 / p99", "serving p50 / p99", "reason"]
    return table(headers, rows, empty="No shadow period reported.")


def device_shadow(s: ShadowFigures | None) -> str | None:
    """A rollout device's shadow period in one line."""
    if s is None:
        return None
    agreement = f"{_pct(s.agreement_pct)} agreement" if s.agreement_pct is not None else "no data"
    p99 = (
        f", p99 {ms(s.shadow_p99_ms)} vs {ms(s.serving_p99_ms)}"
        if s.shadow_p99_ms is not None and s.serving_p99_ms is not None
        else ""
    )
    return f"{s.verdict.value}: {agreement} over {s.compared} requests{p99}"


def batch_shadow(b: ShadowBatchPublic | None) -> str | None:
    """A batch's shadow periods in one line."""
    if b is None:
        return None
    text = f"{b.passed} passed, {b.failed} failed, {b.running} running"
    if b.min_agreement_pct is not None:
        text += f"; lowest agreement {_pct(b.min_agreement_pct)}"
    if b.worst_shadow_p99_ms is not None and b.serving_p99_ms is not None:
        text += f"; slowest p99 {ms(b.worst_shadow_p99_ms)} vs {ms(b.serving_p99_ms)} serving"
    return text
