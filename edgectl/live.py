"""The live rollout view: per batch, how many devices are active, failed and pending.

Batches are numbered from 1 for humans, as the history messages do (the JSON ``index``
counts from 0).

``render_rollout`` (the whole view) and ``changes`` (what a poll changed, one line each)
are pure functions of ``GET /api/v1/rollouts/{id}`` answers. ``LiveView`` shows them: on
a terminal it redraws the view in place (ANSI cursor up + clear); otherwise (piped, in a
log) it prints only the lines that changed, and every new history entry.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from edgectl.durations import format_duration
from edgectl.table import render, when
from edgectl.values import format_labels
from edgectl.words import plural

Rollout = Mapping[str, Any]


def _counts(item: Mapping[str, Any]) -> dict[str, int]:
    raw = item.get("counts") or {}
    return {k: int(raw.get(k) or 0) for k in (*_STATUSES, "total")}


_STATUSES = (
    "pending",
    "updating",
    "retrying",
    "activated",
    "failed",
    "regressed",
    "rolled_back",
    "skipped",
)


def _waiting(counts: Mapping[str, int]) -> int:
    """Devices still on their way: not started, installing or retrying."""
    return counts["pending"] + counts["updating"] + counts["retrying"]


def title(rollout: Rollout) -> str:
    """``rollout 7: det 1.5.0 to fleet store-eu (hw=xeon-amx)``."""
    selector = rollout.get("selector") or {}
    where = f" ({format_labels(selector)})" if selector else ""
    what = f"{rollout.get('model')} {rollout.get('version')}"
    if rollout.get("rollback_of") is not None:
        what += f" (rollback of rollout {rollout['rollback_of']})"
    head, fleet = f"rollout {rollout.get('id')}", rollout.get("fleet")
    if rollout.get("undeploy"):
        return f"{head}: undeploy {rollout.get('model')} from fleet {fleet}{where}"
    return f"{head}: {what} to fleet {fleet}{where}"


def _is_canary(rollout: Rollout, index: int) -> bool:
    strategy = rollout.get("strategy") or {}
    has_canary = strategy.get("canary") is not None or strategy.get("canary_pct") is not None
    return index == 0 and has_canary


def _batch_name(rollout: Rollout, index: int) -> str:
    return f"{index + 1} canary" if _is_canary(rollout, index) else str(index + 1)


def _devices(count: int) -> str:
    return plural(count, "device")


def _note(counts: Mapping[str, int]) -> str:
    notes = [
        f"{counts['updating']} updating" if counts["updating"] else "",
        f"{counts['retrying']} retrying" if counts["retrying"] else "",
        f"{counts['regressed']} regressed" if counts["regressed"] else "",
        f"{counts['rolled_back']} rolled back" if counts["rolled_back"] else "",
        f"{counts['skipped']} skipped" if counts["skipped"] else "",
    ]
    return ", ".join(n for n in notes if n)


def totals(rollout: Rollout) -> str:
    """``20 devices: 5 active, 1 failed, 14 pending (2 updating)``."""
    c = _counts(rollout)
    note = _note(c)
    return (
        f"{_devices(c['total'])}: {c['activated']} active, "
        f"{c['failed']} failed, {_waiting(c)} pending" + (f" ({note})" if note else "")
    )


def deadline(rollout: Rollout) -> str:
    """``each device: 10m to activate after its batch starts``: when a device that is
    still installing or retrying counts as failed."""
    strategy = rollout.get("strategy") or {}
    seconds = strategy.get("install_timeout_s")
    if not isinstance(seconds, int | float):
        return ""
    shadow = strategy.get("shadow") or {}
    period = shadow.get("duration_s") if isinstance(shadow, dict) else None
    if isinstance(period, int | float):  # the deadline leaves room for the shadow period
        return (
            f"each device: {format_duration(float(seconds + period))} to activate after its "
            f"batch starts, its {format_duration(float(period))} shadow period included"
        )
    return f"each device: {format_duration(float(seconds))} to activate after its batch starts"


def status_line(rollout: Rollout) -> str:
    """``running, batch 1 of 4`` / ``paused: latency gate: ...``."""
    state = str(rollout.get("state"))
    batches = rollout.get("batches") or []
    current = rollout.get("current_batch")
    line = state
    if state == "running" and isinstance(current, int) and current >= 0 and batches:
        line += f", batch {current + 1} of {len(batches)}"
    reason = rollout.get("reason")
    if reason and state != "running":
        line += f": {reason}"
    return line


#: How to shorten or skip the health gate's wait for traffic (options of ``push model``).
GATE_WAIT_HINT = (
    "to wait less, push with --gate-min-requests N (fewer requests), "
    "--gate-no-traffic 30s (a shorter idle time) or --no-gate"
)


def gate_rule(rollout: Rollout) -> str:
    """``gate: judged after 100 requests per device on the new version, or passed
    unjudged 5m after it activated without them``: what the gate waits for (empty
    without a gate)."""
    gate = (rollout.get("strategy") or {}).get("gate") or {}
    if gate.get("enabled") is False or not gate or rollout.get("state") != "running":
        return ""
    needed = int(gate.get("min_requests", 100))
    after = format_duration(float(gate.get("no_traffic_timeout_s", 300.0)))
    return (
        f"gate: each device judged after {plural(needed, 'request')} on the new version, "
        f"or passed unjudged {after} after it activated without them"
    )


def gate_wait(rollout: Rollout) -> str | None:
    """Why a running batch whose devices activated is not done yet, if it is the health
    gate waiting for traffic: ``gate: waiting for traffic: 3 devices have fewer than 100
    requests on the new version; each passes unjudged 5m after it activated``."""
    gate = (rollout.get("strategy") or {}).get("gate") or {}
    current = rollout.get("current_batch")
    batches = {b.get("index"): b for b in rollout.get("batches") or []}
    batch = batches.get(current)
    if rollout.get("state") != "running" or gate.get("enabled") is False or batch is None:
        return None
    if batch.get("state") != "running":
        return None
    needed = int(gate.get("min_requests", 100))
    waiting = [
        d
        for d in rollout.get("devices") or []
        if d.get("batch") == current
        and d.get("status") == "activated"
        and not d.get("reason")  # not yet passed (a pass leaves a note, or none at all)
        and int((d.get("observed") or {}).get("requests") or 0) < needed
    ]
    if not waiting:
        return None
    after = format_duration(float(gate.get("no_traffic_timeout_s", 300.0)))
    have = "has" if len(waiting) == 1 else "have"
    return (
        f"gate: waiting for traffic: {plural(len(waiting), 'device')} {have} fewer than "
        f"{plural(needed, 'request')} on the new version; each passes unjudged {after} "
        "after it activated"
    )


def unjudged(rollout: Rollout) -> int:
    """How many devices passed the gate unjudged: no traffic before ``--gate-no-traffic``."""
    return sum(
        1
        for d in rollout.get("devices") or []
        if str(d.get("reason") or "").startswith("not judged: no traffic")
    )


def history_line(entry: Mapping[str, Any]) -> str:
    return f"{when(entry.get('at'), clock=True)} {entry.get('event')}: {entry.get('message')}"


def render_rollout(rollout: Rollout) -> list[str]:
    """The whole view: title and state, one row per batch, totals, latest history."""
    rows: list[list[object]] = []
    for batch in rollout.get("batches") or []:
        c = _counts(batch)
        index = int(batch.get("index", len(rows)))
        rows.append(
            [
                _batch_name(rollout, index),
                batch.get("size", c["total"]),
                c["activated"],
                c["failed"],
                _waiting(c),
                batch.get("state"),
                _note(c),
            ]
        )
    headers = ["batch", "size", "active", "failed", "pending", "state", "note"]
    lines = [f"{title(rollout)}  [{status_line(rollout)}]"]
    lines += [f"note: {n}" for n in rollout.get("notes") or []]
    lines += render(headers, rows).splitlines() if rows else ["(no batches: no device matches)"]
    lines.append(totals(rollout))
    if (limit := deadline(rollout)) and rollout.get("state") == "running":
        lines.append(limit)
    if (rule := gate_rule(rollout)) and not gate_wait(rollout):
        lines.append(rule)
    if waiting := gate_wait(rollout):
        lines += [waiting, f"  ({GATE_WAIT_HINT}; Ctrl-C only stops watching)"]
    history = rollout.get("history") or []
    if history:
        lines.append(history_line(history[-1]))
    return lines


def _batch_summary(rollout: Rollout, batch: Mapping[str, Any]) -> str:
    c = _counts(batch)
    index = int(batch.get("index", 0))
    note = _note(c)
    name = "canary batch 1" if _is_canary(rollout, index) else f"batch {index + 1}"
    return (
        f"{name}: {_devices(int(batch.get('size', c['total'])))}, {c['activated']} active, "
        f"{c['failed']} failed, {_waiting(c)} pending"
        + (f" ({note})" if note else "")
        + f" [{batch.get('state')}]"
    )


def changes(previous: Rollout | None, current: Rollout) -> list[str]:
    """The lines a log should get for this poll: state, batches and history that changed."""
    out = []
    before = previous or {}
    if previous is None:
        out.append(title(current))  # notes come with the history below
        if limit := deadline(current):
            out.append(limit)
        if rule := gate_rule(current):
            out.append(rule)
    if previous is None or status_line(before) != status_line(current):
        out.append(f"rollout {current.get('id')}: {status_line(current)}")
    old_batches = {int(b.get("index", i)): b for i, b in enumerate(before.get("batches") or [])}
    for i, batch in enumerate(current.get("batches") or []):
        old = old_batches.get(int(batch.get("index", i)))
        line = _batch_summary(current, batch)
        if old is None or _batch_summary(before, old) != line:
            out.append(line)
    waiting = gate_wait(current)
    if waiting and waiting != gate_wait(before):
        out.append(waiting)
        if gate_wait(before) is None:
            out.append(f"  ({GATE_WAIT_HINT})")
    seen = len(before.get("history") or [])
    out += [history_line(e) for e in (current.get("history") or [])[seen:]]
    return out


class LiveView:
    """Shows successive rollout answers on ``stream`` (redrawn on a terminal)."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._previous: Rollout | None = None
        self._drawn: list[str] = []
        self._note: str | None = None

    @property
    def last(self) -> Rollout | None:
        """The last answer shown (None before the first)."""
        return self._previous

    def update(self, rollout: Rollout) -> None:
        if self._tty:
            self._draw([*render_rollout(rollout), *([self._note] if self._note else [])])
        else:
            for line in changes(self._previous, rollout):
                self._stream.write(line + "\n")
        self._stream.flush()
        self._previous = rollout

    def note(self, text: str | None) -> None:
        """A transient line under the view (e.g. the control plane is unreachable)."""
        if text == self._note:
            return
        self._note = text
        if self._tty and self._previous is not None:
            self.update(self._previous)
        elif text:
            self._stream.write(text + "\n")
            self._stream.flush()

    def _draw(self, lines: Sequence[str]) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 20)
        shown = [line[:width] for line in lines]
        if shown == self._drawn:
            return
        if self._drawn:  # up to the view's first line, clear to the end of the screen
            self._stream.write(f"\x1b[{len(self._drawn)}F\x1b[J")
        self._stream.write("".join(line + "\n" for line in shown))
        self._drawn = shown
