"""The dashboard's figures over time: a device's charts and timeline, a rollout's batches
before and after, and the fleet cohort view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from controlplane import cohorts as cohort_query
from controlplane.cohorts import Cohort
from controlplane.dashboard.charts import Line, bar_chart, line_chart, number
from controlplane.dashboard.html import Markup, ago, badge, esc, join, link, section, table
from controlplane.history import HeartbeatSample
from controlplane.schemas import DevicePublic, RolloutPublic
from controlplane.timeline import Entry
from controlplane.trends import batch_figures, rates, thin

#: Points drawn per chart at most (a day of 10 s heartbeats is 8,640 samples).
MAX_POINTS = 240


def window_links(base: str, chosen: str, **keep: str | None) -> Markup:
    """The windows offered, ``chosen`` marked, as links to ``base`` (``keep``: other
    query parameters to carry)."""
    items = []
    for name in cohort_query.WINDOWS:
        query = urlencode({**{k: v for k, v in keep.items() if v}, "window": name})
        text = esc(name)
        items.append(
            Markup(f'<strong class="chosen">{text}</strong>')
            if name == chosen
            else link(f"{base}?{query}", name)
        )
    return Markup(f'<p class="windows">window: {join(items, " · ")}</p>')


# -- one device ------------------------------------------------------------------------


def cut_note(count: int, most: int) -> Markup:
    """A note when the window held more samples than were read (the newest are drawn)."""
    if count < most:
        return Markup("")
    return Markup(
        f'<p class="hint">This window holds more than {most:,} samples: the charts show '
        f"the newest {most:,}, so they start later than the window does.</p>"
    )


def device_charts(samples: Sequence[HeartbeatSample]) -> Markup:
    """For each model version in ``samples`` (oldest first): latency and traffic."""
    parts = []
    ordered = sorted(samples, key=lambda s: (s.model, s.version, s.at))
    for (model, version), group in groupby(ordered, key=lambda s: (s.model, s.version)):
        kept = list(group)
        if len(kept) < 2:
            parts.append(
                Markup(
                    f'<h3>{esc(f"{model} {version}")}</h3><p class="empty">One heartbeat '
                    "in this window: a chart needs two (the traffic between them).</p>"
                )
            )
            continue
        points = thin(rates(kept), MAX_POINTS)
        latency = [
            Line("p50", [(p.at, p.p50_ms) for p in points]),
            Line("p95", [(p.at, p.p95_ms) for p in points]),
        ]
        traffic = [
            Line("requests/min", [(p.at, p.requests_per_min) for p in points]),
            Line("errors/min", [(p.at, p.errors_per_min) for p in points]),
        ]
        parts.append(
            Markup(
                f'<div class="charts" data-model="{esc(model)}" data-version="{esc(version)}">'
                f"<h3>{esc(f'{model} {version}')}</h3>"
                f"{line_chart(f'{model} {version} latency', latency, unit='ms')}"
                f"{line_chart(f'{model} {version} traffic', traffic, unit='/min')}</div>"
            )
        )
    if not parts:
        return Markup('<p class="empty">No heartbeat figures in this window.</p>')
    return join(parts)


def candidates(detail: Mapping[str, Any]) -> Markup:
    """A selection's candidates and their measured figures (the chosen one in bold)."""
    rows = [
        [
            Markup(f"<strong>{esc(c.get('key'))}</strong>")
            if c.get("key") == detail.get("chosen")
            else c.get("key"),
            None if c.get("p50_ms") is None else f"{c['p50_ms']:.3f} ms",
            None if c.get("p99_ms") is None else f"{c['p99_ms']:.3f} ms",
            c.get("runs"),
            None if c.get("rel_error") is None else f"{100 * c['rel_error']:.2g} %",
            c.get("excluded"),
        ]
        for c in detail.get("candidates") or []
    ]
    if not rows:
        return Markup("")
    headers = ["candidate", "p50", "p99", "runs", "max error", "excluded"]
    return Markup(f'<div class="candidates">{table(headers, rows, empty="")}</div>')


def selections(device: DevicePublic) -> Markup:
    """How each active model's backend was chosen, with every candidate's figures."""
    parts = []
    for name, chosen in sorted(device.selections.items()):
        how = "pinned" if chosen.pinned else "cached" if chosen.cached else "measured"
        head = (
            f"{name} {chosen.version}: {chosen.backend} ({how}, {chosen.elapsed_s:.1f} s) "
            f"— {chosen.reason}"
        )
        parts.append(Markup(f"<p>{esc(head)}</p>{candidates(chosen.model_dump(mode='json'))}"))
    return join(parts) if parts else Markup('<p class="empty">No selection reported.</p>')


def _entry_link(entry: Entry) -> Markup | str | None:
    if entry.rollout_id is not None:
        return link(f"/dashboard/rollouts/{entry.rollout_id}", f"rollout {entry.rollout_id}")
    if entry.deployment_id is not None:
        return f"deployment {entry.deployment_id}"
    return None


def device_timeline(entries: Sequence[Entry], now: datetime) -> Markup:
    """Newest first; a selection lists its candidates' figures under its message."""
    rows = []
    for e in entries:
        what = f"{e.model} {e.version}" if e.model and e.version else e.model
        message: Markup | str = e.message
        if e.kind == "selection":
            message = Markup(f"{esc(e.message)}{candidates(e.detail or {})}")
        kind = "bad" if e.kind == "error" or "failed" in e.message else e.kind
        rows.append([ago(e.at, now), badge(e.kind, kind), what, message, _entry_link(e)])
    headers = ["when", "kind", "model", "what", "rollout"]
    return Markup(
        f'<div class="timeline">{table(headers, rows, empty="Nothing recorded yet.")}</div>'
    )


# -- one rollout -----------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{number(value)} %"


def rollout_batches(rollout: RolloutPublic) -> Markup:
    """Each batch's p95 and error rate before (the previous version) and after."""
    figures = batch_figures(
        len(rollout.batches),
        (
            (
                d.batch,
                d.baseline.model_dump() if d.baseline else None,
                d.observed.model_dump() if d.observed else None,
            )
            for d in rollout.devices
        ),
    )
    canary = bool(rollout.strategy.get("canary"))
    labels = ["canary" if canary and f.index == 0 else f"batch {f.index + 1}" for f in figures]
    series = ["before", "after"]
    latency = [
        (label, [f.before.p95_ms, f.after.p95_ms]) for label, f in zip(labels, figures, strict=True)
    ]
    errors = [
        (label, [f.before.error_percent, f.after.error_percent])
        for label, f in zip(labels, figures, strict=True)
    ]
    rows = [
        [
            label,
            f.after.devices,
            f.before.requests,
            f.after.requests,
            None if f.before.p95_ms is None else f"{f.before.p95_ms:.2f} ms",
            None if f.after.p95_ms is None else f"{f.after.p95_ms:.2f} ms",
            _percent(f.before.error_percent),
            _percent(f.after.error_percent),
        ]
        for label, f in zip(labels, figures, strict=True)
    ]
    headers = ["batch", "devices reporting", "requests before", "requests after"]
    headers += ["worst p95 before", "worst p95 after", "errors before", "errors after"]
    return join(
        [
            bar_chart("worst p95 per batch", latency, series, unit="ms"),
            bar_chart("error rate per batch", errors, series, unit="%"),
            table(headers, rows, empty="No batch."),
        ]
    )


# -- the cohort view -------------------------------------------------------------------


def _cohort_row(n: int, c: Cohort) -> list[object]:
    return [
        f"#{n}",
        f"{c.model} {c.version}",
        c.backend or None,
        c.profile,
        c.devices,
        c.requests,
        c.errors,
        _percent(c.error_percent),
        None if c.p50_ms is None else f"{c.p50_ms:.2f} ms",
        None if c.p95_ms is None else f"{c.p95_ms:.2f} ms",
        None if c.worst_p95_ms is None else f"{c.worst_p95_ms:.2f} ms",
    ]


def cohorts_page(
    found: Sequence[Cohort], *, window: str, model: str | None, fleet: str | None
) -> Markup:
    """The cohort table and two charts (p95 and error rate per cohort)."""
    headers = ["#", "model", "backend", "profile", "devices", "requests", "errors", "error rate"]
    headers += ["mean p50", "mean p95", "worst p95"]
    scope = " · ".join(x for x in (f"model {model}" if model else "", fleet or "") if x)
    intro = Markup(
        '<p class="hint">Every device serving one model version with one backend on one '
        "hardware profile is a cohort; its figures are those its devices reported in the "
        f"window{esc(f' ({scope})' if scope else '')}.</p>"
    )
    charts = join(
        [
            bar_chart(
                "p95 per cohort",
                [(f"#{n}", [c.p95_ms, c.worst_p95_ms]) for n, c in enumerate(found, 1)],
                ["mean p95", "worst p95"],
                unit="ms",
            ),
            bar_chart(
                "error rate per cohort",
                [(f"#{n}", [c.error_percent]) for n, c in enumerate(found, 1)],
                ["error rate"],
                unit="%",
            ),
        ]
    )
    rows = [_cohort_row(n, c) for n, c in enumerate(found, 1)]
    empty = "No heartbeat figures in this window."
    links = window_links("/dashboard/cohorts", window, model=model, fleet=fleet)
    return join(
        [
            intro,
            links,
            section("Cohorts", table(headers, rows, empty=empty)),
            section("Charts", charts),
        ]
    )
