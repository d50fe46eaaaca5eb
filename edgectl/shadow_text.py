"""Shadow periods in ``edgectl devices show`` and ``edgectl rollouts show``: a device's
latest period of each model as a table, a rollout device's and a batch's in one line
(from the API's JSON: ``shadows``, ``devices[].shadow``, ``batches[].shadow``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgectl.table import render


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _dev(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def shadows_table(shadows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``devices show``: one row per model's latest shadow period."""
    rows = [
        [
            s.get("name"),
            f"{s.get('version')} beside {s.get('serving_version')}",
            s.get("verdict"),
            f"{s.get('compared', 0)}/{s.get('sampled', 0)} ({s.get('dropped', 0)} dropped)",
            _pct(s.get("agreement_pct")),
            _pct(s.get("top1_agreement_pct")),
            _dev(s.get("max_deviation")),
            _dev(s.get("mean_deviation")),
            f"{_ms(s.get('shadow_p50_ms'))}/{_ms(s.get('shadow_p99_ms'))}",
            f"{_ms(s.get('serving_p50_ms'))}/{_ms(s.get('serving_p99_ms'))}",
            s.get("reason") or "",
        ]
        for s in shadows
    ]
    headers = ["shadow of", "version", "verdict", "compared", "agree", "top-1"]
    headers += ["max dev", "mean dev", "shadow p50/p99 ms", "serving p50/p99 ms", "reason"]
    return render(headers, rows).splitlines()


def device_shadow(s: Mapping[str, Any] | None) -> str:
    """A rollout device's shadow period in one line ("-": none)."""
    if not s:
        return "-"
    return (  # p50 first: the latency gate judges medians (the shadow's tail is its
        # idle-priority worker waiting for a core: agent.serving.shadow)
        f"{s.get('verdict')}: {_pct(s.get('agreement_pct'))} agree over "
        f"{s.get('compared', 0)} req, p50 {_ms(s.get('shadow_p50_ms'))} vs "
        f"{_ms(s.get('serving_p50_ms'))} ms (p99 {_ms(s.get('shadow_p99_ms'))} vs "
        f"{_ms(s.get('serving_p99_ms'))})"
    )


def batch_shadows(batches: Sequence[Mapping[str, Any]]) -> list[str]:
    """``rollouts show``: one line per batch that reported shadow periods."""
    lines = []
    for b in batches:
        s = b.get("shadow")
        if not s:
            continue
        line = (
            f"  batch {int(b.get('index') or 0) + 1}: {s.get('passed')} passed, "
            f"{s.get('failed')} failed, {s.get('running')} running"
        )
        if s.get("min_agreement_pct") is not None:
            line += f"; lowest agreement {_pct(s['min_agreement_pct'])}"
        if s.get("worst_shadow_p99_ms") is not None:
            line += (
                f"; slowest p99 {_ms(s['worst_shadow_p99_ms'])} ms vs "
                f"{_ms(s.get('serving_p99_ms'))} ms serving"
            )
        lines.append(line)
    return ["", "shadow periods:", *lines] if lines else []
