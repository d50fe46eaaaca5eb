"""Parts of the rollout page and the rollout rows: the strategy and gate thresholds, which
batch is the canary, when the next batch starts (an absolute time and the seconds left,
computed here: the page has no script and refreshes itself), and whether the health gate
paused the rollout."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from controlplane.dashboard.html import Markup, badge, esc, facts, join, span, utc
from controlplane.rollouts.plan import counted
from controlplane.rollouts.states import is_driven
from controlplane.rollouts.strategy import Strategy, fmt_num
from controlplane.schemas import BatchPublic, RolloutSummary

#: a reason the policy gives when its health gate pauses or aborts a rollout:
#: "latency gate: <device>: ..." or "error-rate gate: <device>: ..."
_GATE_REASON = re.compile(r"^[a-z-]+ gate: ")


def gate_paused(rollout: RolloutSummary) -> bool:
    """Whether the health gate (not an operator) paused the rollout: its last pause in
    the history names no one who acted (an operator's always does, whatever its reason
    says), and the reason is the gate's."""
    if rollout.state != "paused":
        return False
    pauses = [h for h in rollout.history if h.event == "paused"]
    if pauses and pauses[-1].by is not None:
        return False
    return bool(_GATE_REASON.match(rollout.reason or ""))


def state_badge(rollout: RolloutSummary) -> Markup:
    """The rollout's state, with a ``gate`` mark when the health gate paused it."""
    if gate_paused(rollout):
        return join([badge(rollout.state), badge("paused by gate", "gate")], " ")
    return badge(rollout.state)


def _strategy(rollout: RolloutSummary) -> Strategy | None:
    try:
        return Strategy.from_json(rollout.strategy)
    except ValueError:  # written by an older release: shown as stored
        return None


def has_canary(rollout: RolloutSummary) -> bool:
    """Whether the first batch is a canary (the strategy asks for one)."""
    strategy = _strategy(rollout)
    return strategy is not None and (strategy.canary or strategy.canary_pct) is not None


def batch_label(rollout: RolloutSummary, batch: BatchPublic) -> Markup:
    """``1 canary`` for the canary batch, else its number."""
    number = esc(batch.index + 1)
    if batch.index == 0 and has_canary(rollout):
        return Markup(f"{number} {badge('canary')}")
    return number


def _seconds(value: float) -> str:
    return f"{fmt_num(value)} s" + (f" ({span(value)})" if value >= 60 else "")


def _canary(s: Strategy) -> str:
    if s.canary is not None:
        return f"{counted(s.canary)}, then {counted(s.batches, 'batch')}"
    if s.canary_pct is not None:
        return f"{fmt_num(s.canary_pct)}% of the devices, then {counted(s.batches, 'batch')}"
    return f"none: {counted(s.batches, 'batch')}"


def strategy_facts(rollout: RolloutSummary) -> Markup:
    """The strategy and the health gate's thresholds, as the rollout runs them."""
    s = _strategy(rollout)
    if s is None:
        return facts([(k, str(v)) for k, v in sorted(rollout.strategy.items())])
    g = s.gate
    failures = (
        "no limit"
        if s.max_failures_pct is None
        else f"abort above {fmt_num(s.max_failures_pct)}% failed (once {s.min_finished} finished)"
    )
    pairs: list[tuple[str, Any]] = [
        ("canary", _canary(s)),
        ("wait between batches", _seconds(s.wait_s)),
        ("install timeout", _seconds(s.install_timeout_s)),
        ("failure threshold", failures),
        ("health gate", "on" if g.enabled else "off"),
        *([("shadow period", _shadow(s))] if s.shadow is not None else []),
    ]
    if g.enabled:
        pairs += [
            ("gate min requests", g.min_requests),
            (
                "latency threshold",
                f"p95 more than {fmt_num(g.latency_pct)}% and "
                f"{fmt_num(g.latency_floor_ms)} ms over the device's baseline",
            ),
            (
                "error threshold",
                f"error rate more than {fmt_num(g.error_rate_pct)} percentage points "
                "over the device's baseline",
            ),
            (
                "no traffic",
                f"a device passes {_seconds(g.no_traffic_timeout_s)} after it activated",
            ),
            ("on regression", g.action.value),
        ]
    return facts(pairs)


def _shadow(s: Strategy) -> str:
    shadow = s.shadow
    assert shadow is not None
    agreement = (
        f"agreement at least {fmt_num(shadow.min_agreement_pct)}%"
        if shadow.min_agreement_pct is not None
        else "agreement not gated"
    )
    latency = "latency held to the latency threshold" if s.gate.enabled else "latency not gated"
    return (
        f"{_seconds(shadow.duration_s)} on {fmt_num(shadow.sample_pct)}% of live requests "
        f"before each device switches; {agreement}; {latency}"
    )


def next_batch(rollout: RolloutSummary, now: datetime) -> Markup | None:
    """When the next batch starts (absolute, and in how long), or what it waits for;
    None once the rollout is over."""
    if rollout.state == "paused":
        return esc("none while the rollout is paused: resume it to go on")
    if not is_driven(rollout.state):
        return None
    current = next((b for b in rollout.batches if b.index == rollout.current_batch), None)
    if current is None:
        return esc("the first batch starts at the driver's next step")
    following = rollout.current_batch + 2  # the next batch's number, from 1
    if following > len(rollout.batches):
        return esc("none: this is the last batch")
    if current.state != "done" or current.done_at is None:
        c = current.counts
        finished = c.activated + c.failed + c.regressed + c.rolled_back + c.skipped
        return esc(
            f"batch {following} starts once batch {current.index + 1} is done "
            f"({finished} of {c.total} finished, then judged by the gate)" + _wait_after(rollout)
        )
    wait = float(rollout.strategy.get("wait_s") or 0.0)
    start = current.done_at + timedelta(seconds=wait)
    left = (start - now).total_seconds()
    stamp = esc(utc(start))
    when = f"in {span(left)}" if left >= 1 else "now (at the driver's next step)"
    return Markup(
        f'batch {following} starts at <time datetime="{stamp}">{stamp}</time> '
        f'<span class="countdown">{esc(when)}</span>'
    )


def _wait_after(rollout: RolloutSummary) -> str:
    wait = float(rollout.strategy.get("wait_s") or 0.0)
    return f" and {_seconds(wait)} after that" if wait > 0 else ""
