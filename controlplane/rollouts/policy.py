"""The rollout engine's decisions: a pure function of (rollout, device states, now).

No I/O, no database, no clock: the driver builds a :class:`RolloutView` and one
:class:`DeviceView` per device from the database, calls :func:`decide`, applies the
:class:`Decision` (device changes first, then the action) and calls again on its next
tick. Calling again with the state after the changes were applied never repeats them.

Planning (:func:`plan_batches`, in :mod:`controlplane.rollouts.plan` with
:func:`plan_notes` and :func:`summary`): device ids sorted; the canary batch first
(``canary`` devices, or ``ceil(canary_pct% of n)``, at least 1, at most n), then the rest
split into ``batches`` batches whose sizes differ by at most 1 (earlier ones larger). No
empty batches. No canary and ``batches == 1``: one batch with everyone (all at once).

Judging (:func:`judge`, one device on the new version against its own baseline on the
previous one; :class:`Figures` are what the model served and its model/server errors,
a client's bad requests left out: :func:`controlplane.rollouts.rows.figures`):

- ``waiting`` until ``observed.requests >= min_requests``; a device activated for
  ``no_traffic_timeout_s`` without that many requests passes, "not judged: no traffic".
- latency regresses when ``p95(new) > p95(base) * (1 + latency_pct/100)`` and
  ``p95(new) - p95(base) > latency_floor_ms``; without a baseline p95 it is not compared
  (passes, "no baseline").
- the error rate regresses when ``error%(new) - error%(base) > error_rate_pct`` (a
  missing baseline counts as 0%).

Deciding (:func:`decide`, only while the rollout is in a state the driver steps,
``running``: see :mod:`controlplane.rollouts.states`; COMPLETE, PAUSE and ABORT are the
driver's moves ``complete``, ``auto_pause`` and ``auto_abort`` of that table):

1. Before the first batch: START_BATCH 0 (COMPLETE "no devices match" without batches).
2. Devices of the started batches follow their deployment target: ``activated`` ->
   ACTIVATED (the driver records ``activated_at``; a FAILED device that activates after
   all is ACTIVATED again and judged afresh), ``failed`` -> FAILED with the target's
   reason. In the current batch only: ``retrying`` (the agent retries a failure by
   itself) -> RETRYING, which is not finished; not active ``install_timeout_s`` after
   the batch started (the per-device deadline) -> FAILED "timed out after N s (last
   status: ...)"; PENDING or RETRYING devices whose target moves on become UPDATING.
   REGRESSED, ROLLED_BACK and SKIPPED never move. A device whose target failed its
   shadow gate (the reason starts with ``protocol.SHADOW_GATE_PREFIX``: the agent ran the
   new version as a shadow and did not switch) is REGRESSED, as in rule 3, gate on or
   off: "shadow gate: <device>: agreement ...". The per-device deadline is
   ``install_timeout_s`` plus the shadow period's duration.
3. Gate (when enabled): each device already ACTIVATED in the view is judged (one that
   activated in this call is judged on the next); a regression makes it REGRESSED and
   the rollout PAUSEs or ABORTs (``gate.action``): "latency gate: <device>: p95 ..." or
   "error-rate gate: <device>: error rate ...". REGRESSED is finished and never judged
   again, so a resumed rollout goes on. ACTIVATED devices of the current batch are
   judged until the next batch starts, the wait after a batch included; one of an
   earlier batch (it activated late) until it passed once. A first pass is a change
   with ``passed`` (the driver records ``judged_at``).
4. Failure threshold over the batches so far: ABORT when FAILED / finished (activated +
   failed + regressed) * 100 > ``max_failures_pct`` and finished >= ``min_finished``.
   An ABORT wins over a PAUSE in the same call.
5. The batch is done when all its devices are finished and every ACTIVATED one was
   judged "pass" (or the gate is off); no batch starts while a device that activated
   late waits for its verdict: ``batch_done`` once (the driver sets
   ``batch_done_at = now``), with a same-status change carrying the note of each device
   that passed with one ("no baseline", "not judged: no traffic"); the driver must only
   update the reason for those, not ``activated_at``. The next batch starts on a later
   call once ``now >= batch_done_at + wait_s``; after the last batch: COMPLETE with
   :func:`summary` ("all N devices updated", or "U of N devices updated (F failed)"),
   together with ``batch_done``.

Recording (:func:`record`, while the rollout is ``paused``: active, not driven): only
what the devices of started batches report themselves, rule 2's ``activated``,
``failed`` and the failed shadow gate (REGRESSED), so a paused rollout's rows never show
``updating`` for a device that already said how its install ended. Nothing is judged,
timed out, started or decided; a resumed rollout goes on from the recorded rows.

Naive datetimes (SQLite) are taken as UTC. :class:`Strategy` and :class:`Gate` (with
their JSON form and validation) live in :mod:`controlplane.rollouts.strategy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from controlplane.rollouts.plan import RolloutDeviceStatus, plan_batches, plan_notes, summary
from controlplane.rollouts.states import is_driven
from controlplane.rollouts.strategy import Gate, GateAction, Strategy, fmt_num
from protocol import SHADOW_GATE_PREFIX

__all__ = [
    "FINISHED",
    "ActionKind",
    "Decision",
    "DeviceChange",
    "DeviceView",
    "Figures",
    "Gate",
    "GateAction",
    "RolloutDeviceStatus",
    "RolloutView",
    "Strategy",
    "Verdict",
    "decide",
    "judge",
    "plan_batches",
    "plan_notes",
    "summary",
]


#: Statuses that end a device's part in a batch.
FINISHED = frozenset(
    {RolloutDeviceStatus.ACTIVATED, RolloutDeviceStatus.FAILED, RolloutDeviceStatus.REGRESSED}
)


#: Statuses a device no longer moves from within a batch (rolled back only after an abort).
_SETTLED = FINISHED | {RolloutDeviceStatus.ROLLED_BACK}

#: Statuses that never move again (a FAILED device that activates after all is ACTIVATED).
_FINAL = frozenset(
    {
        RolloutDeviceStatus.REGRESSED,
        RolloutDeviceStatus.ROLLED_BACK,
        RolloutDeviceStatus.SKIPPED,
    }
)


class Verdict(StrEnum):
    PASS = "pass"
    REGRESSED = "regressed"
    WAITING = "waiting"


class ActionKind(StrEnum):
    START_BATCH = "start_batch"
    COMPLETE = "complete"
    PAUSE = "pause"
    ABORT = "abort"


@dataclass(frozen=True)
class Figures:
    """One model version's cumulative inference figures on one device."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate_pct(self) -> float:
        return self.errors / self.requests * 100 if self.requests > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "p95_ms": self.p95_ms}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Figures | None:
        """Figures from a ``{requests, errors, p95_ms}`` column (None stays None)."""
        if data is None:
            return None
        p95 = data.get("p95_ms")
        return cls(
            requests=int(data.get("requests") or 0),
            errors=int(data.get("errors") or 0),
            p95_ms=None if p95 is None else float(p95),
        )


@dataclass(frozen=True)
class DeviceView:
    device_id: str
    batch: int
    status: RolloutDeviceStatus
    target_status: str | None
    target_reason: str | None
    baseline: Figures | None
    observed: Figures | None
    activated_at: datetime | None
    #: it passed the gate once since it activated (``RolloutDevice.judged_at``)
    judged: bool = False


@dataclass(frozen=True)
class RolloutView:
    state: str
    strategy: Strategy
    batch_count: int
    current_batch: int
    batch_started_at: datetime | None
    batch_done_at: datetime | None


@dataclass(frozen=True)
class DeviceChange:
    device_id: str
    status: RolloutDeviceStatus
    reason: str | None
    #: it passed the gate (the driver records ``judged_at``)
    passed: bool = False


@dataclass(frozen=True)
class Decision:
    devices: tuple[DeviceChange, ...] = ()
    action: ActionKind | None = None
    batch: int | None = None
    reason: str | None = None
    batch_done: bool = False


class _Assessment(NamedTuple):
    verdict: Verdict
    reason: str | None
    gate: str | None = None  # "latency" or "error-rate" when regressed


def judge(
    gate: Gate,
    baseline: Figures | None,
    observed: Figures | None,
    activated_at: datetime | None,
    now: datetime,
) -> tuple[str, str | None]:
    """("pass" | "regressed" | "waiting", reason) for one device on the new version."""
    verdict, reason, _ = _assess(gate, baseline, observed, activated_at, now)
    return verdict, reason


def _assess(
    gate: Gate,
    baseline: Figures | None,
    observed: Figures | None,
    activated_at: datetime | None,
    now: datetime,
) -> _Assessment:
    new = observed or Figures(requests=0, errors=0, p95_ms=None)
    if new.requests < gate.min_requests:
        if activated_at is not None and _elapsed(now, activated_at) >= gate.no_traffic_timeout_s:
            note = "not judged: no traffic"
            if new.requests:
                note += f" (only {new.requests} of {gate.min_requests} requests)"
            return _Assessment(Verdict.PASS, note)
        return _Assessment(Verdict.WAITING, None)
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    base_p95 = baseline.p95_ms if baseline is not None else None
    if base_p95 is None:
        notes.append("no baseline")
    elif new.p95_ms is None:
        notes.append("no p95 reported")
    elif (
        new.p95_ms > base_p95 * (1 + gate.latency_pct / 100)
        and new.p95_ms - base_p95 > gate.latency_floor_ms
    ):
        if base_p95 > 0:
            change = f"{(new.p95_ms / base_p95 - 1) * 100:+.0f}%"
        else:
            change = f"+{new.p95_ms - base_p95:.1f} ms"
        problems.append(
            (
                "latency",
                f"p95 {new.p95_ms:.1f} ms vs {base_p95:.1f} ms before "
                f"({change}, limit +{fmt_num(gate.latency_pct)}%)",
            )
        )
    base_rate = baseline.error_rate_pct if baseline is not None else 0.0
    if new.error_rate_pct - base_rate > gate.error_rate_pct:
        before = f"{base_rate:.1f}% before" if baseline is not None else "0.0% (no baseline)"
        problems.append(
            (
                "error-rate",
                f"error rate {new.error_rate_pct:.1f}% vs {before} "
                f"(limit +{fmt_num(gate.error_rate_pct, 1)} points)",
            )
        )
    if problems:
        return _Assessment(Verdict.REGRESSED, "; ".join(r for _, r in problems), problems[0][0])
    return _Assessment(Verdict.PASS, "; ".join(notes) or None)


def decide(rollout: RolloutView, devices: Sequence[DeviceView], now: datetime) -> Decision:
    """The next step of a running rollout (see the module docstring for the rules)."""
    if not is_driven(rollout.state):
        return Decision()
    if rollout.batch_count <= 0:
        return Decision(action=ActionKind.COMPLETE, reason="no devices match")
    current = rollout.current_batch
    if current < 0:
        return Decision(action=ActionKind.START_BATCH, batch=0)
    strategy = rollout.strategy
    gate = strategy.gate
    started = sorted((d for d in devices if d.batch <= current), key=lambda d: d.device_id)
    batch = [d for d in started if d.batch == current]
    status = {d.device_id: d.status for d in devices}
    changes: dict[str, DeviceChange] = {}

    def change(
        device_id: str, new: RolloutDeviceStatus, reason: str | None, *, passed: bool = False
    ) -> None:
        changes[device_id] = DeviceChange(device_id, new, reason, passed)
        status[device_id] = new

    regressions: list[tuple[str, _Assessment]] = []
    for device in started:
        install = _install_change(device, rollout, now, current=device.batch == current)
        if install is not None:
            change(device.device_id, install.status, install.reason)
            if install.status is RolloutDeviceStatus.REGRESSED:  # its shadow gate failed
                text = (install.reason or "").removeprefix(SHADOW_GATE_PREFIX).strip()
                regressions.append(
                    (device.device_id, _Assessment(Verdict.REGRESSED, text, "shadow"))
                )

    # judged: the current batch's activated devices (until the next batch starts) and
    # any earlier one that activated late (it failed, then its agent got there after
    # all) until it passed once
    judged = [
        d
        for d in started
        if d.status is RolloutDeviceStatus.ACTIVATED
        and status[d.device_id] is RolloutDeviceStatus.ACTIVATED  # not failed in this call
        and (d.batch == current or not d.judged)
    ]
    passed: dict[str, _Assessment] = {}
    if gate.enabled:
        for device in judged:
            since = device.activated_at or rollout.batch_started_at
            found = _assess(gate, device.baseline, device.observed, since, now)
            if found.verdict is Verdict.REGRESSED:
                change(device.device_id, RolloutDeviceStatus.REGRESSED, found.reason)
                regressions.append((device.device_id, found))
            elif found.verdict is Verdict.PASS:
                passed[device.device_id] = found
                if not device.judged and device.device_id not in changes:
                    activated = RolloutDeviceStatus.ACTIVATED
                    change(device.device_id, activated, found.reason, passed=True)

    action: ActionKind | None = None
    reason: str | None = None
    if regressions:
        device_id, found = regressions[0]
        action = ActionKind.ABORT if gate.action is GateAction.ABORT else ActionKind.PAUSE
        reason = f"{found.gate} gate: {device_id}: {found.reason}"
        if len(regressions) > 1:
            more = len(regressions) - 1
            reason += f" (and {more} more device{'s' if more > 1 else ''})"
    if action is not ActionKind.ABORT:
        tripped = _failure_threshold(strategy, started, status)
        if tripped is not None:
            action, reason = ActionKind.ABORT, tripped
    if action is not None:
        return Decision(devices=_ordered(changes), action=action, reason=reason)

    if not all(status[d.device_id] in _SETTLED for d in batch):
        return Decision(devices=_ordered(changes))
    first_done = rollout.batch_done_at is None
    activated = RolloutDeviceStatus.ACTIVATED
    # not passed yet: the batch's devices (once, before it is done), and any that
    # activated late (failed first, or after their batch was done): the next batch
    # waits for their verdict
    late = [d for d in started if d.status is not activated or not d.judged]
    unjudged = [
        d.device_id
        for d in (batch if first_done else []) + late
        if status[d.device_id] is activated and d.device_id not in passed
    ]
    if gate.enabled and unjudged:
        return Decision(devices=_ordered(changes))
    if first_done:
        for device in batch:
            note = passed[device.device_id].reason if device.device_id in passed else None
            if note is not None and device.device_id not in changes:
                change(device.device_id, RolloutDeviceStatus.ACTIVATED, note)
    if current >= rollout.batch_count - 1:
        return Decision(
            devices=_ordered(changes),
            action=ActionKind.COMPLETE,
            reason=summary(status.values()),
            batch_done=first_done,
        )
    done_at = rollout.batch_done_at
    if done_at is None:
        return Decision(devices=_ordered(changes), batch_done=True)
    if _elapsed(now, done_at) >= strategy.wait_s:
        return Decision(devices=_ordered(changes), action=ActionKind.START_BATCH, batch=current + 1)
    return Decision(devices=_ordered(changes))


def record(devices: Sequence[DeviceView]) -> Decision:
    """What a paused rollout records: each started device's own report of how its install
    ended (module docstring, "Recording"); no action."""
    changes = []
    for device in devices:
        if device.status is not RolloutDeviceStatus.PENDING:  # its batch started
            reported = _reported_change(device)
            if reported is not None:
                changes.append(reported)
    return Decision(devices=tuple(changes))


def _reported_change(device: DeviceView) -> DeviceChange | None:
    """Rule 2's part the device reports itself: its target ``activated`` or ``failed``
    (a failed shadow gate: REGRESSED); None for anything else."""
    if device.status in _FINAL:
        return None
    target = device.target_status
    if target == "activated":
        if device.status is RolloutDeviceStatus.ACTIVATED:
            return None
        return DeviceChange(device.device_id, RolloutDeviceStatus.ACTIVATED, None)
    if target == "failed":
        if device.status is RolloutDeviceStatus.FAILED:
            return None
        reason = device.target_reason or "install failed"
        if reason.startswith(SHADOW_GATE_PREFIX):  # it never switched: a regression
            return DeviceChange(device.device_id, RolloutDeviceStatus.REGRESSED, reason)
        return DeviceChange(device.device_id, RolloutDeviceStatus.FAILED, reason)
    return None


def _install_change(
    device: DeviceView, rollout: RolloutView, now: datetime, *, current: bool
) -> DeviceChange | None:
    """Rule 2: a started device following its deployment target (the deadline and the
    first move to UPDATING only in the current batch)."""
    if device.status in _FINAL:
        return None
    target = device.target_status
    if target in ("activated", "failed"):
        return _reported_change(device)
    if device.status in (RolloutDeviceStatus.ACTIVATED, RolloutDeviceStatus.FAILED):
        return None
    if not current:
        return None
    shadow = rollout.strategy.shadow
    timeout = rollout.strategy.install_timeout_s + (shadow.duration_s if shadow else 0.0)
    started = rollout.batch_started_at
    if started is not None and _elapsed(now, started) >= timeout:
        reason = f"timed out after {fmt_num(timeout)} s"
        if target is not None:
            reason += f" (last status: {target}"
            reason += f": {device.target_reason})" if device.target_reason else ")"
        return DeviceChange(device.device_id, RolloutDeviceStatus.FAILED, reason)
    if target == "retrying":
        if device.status is RolloutDeviceStatus.RETRYING:
            return None
        return DeviceChange(device.device_id, RolloutDeviceStatus.RETRYING, device.target_reason)
    if device.status in (RolloutDeviceStatus.PENDING, RolloutDeviceStatus.RETRYING):
        return DeviceChange(device.device_id, RolloutDeviceStatus.UPDATING, None)
    return None


def _failure_threshold(
    strategy: Strategy, devices: Sequence[DeviceView], status: Mapping[str, RolloutDeviceStatus]
) -> str | None:
    """Rule 4: the abort reason when too many finished devices failed, else None."""
    limit = strategy.max_failures_pct
    if limit is None:
        return None
    finished = [d for d in devices if status[d.device_id] in FINISHED]
    failed = sum(1 for d in finished if status[d.device_id] is RolloutDeviceStatus.FAILED)
    if len(finished) < strategy.min_finished or not finished:
        return None
    share = failed / len(finished) * 100
    if share <= limit:
        return None
    return (
        f"failure threshold: {failed} of {len(finished)} finished devices failed "
        f"({fmt_num(share)}% > {fmt_num(limit)}%)"
    )


def _ordered(changes: Mapping[str, DeviceChange]) -> tuple[DeviceChange, ...]:
    return tuple(changes[k] for k in sorted(changes))


def _elapsed(now: datetime, then: datetime) -> float:
    """Seconds from ``then`` to ``now``; a naive datetime is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()
