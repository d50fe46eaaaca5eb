"""The dashboard's pages, from the same ``XPublic`` answers the REST API gives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controlplane.dashboard import finder, trend_pages
from controlplane.dashboard.html import (
    Markup,
    ago,
    badge,
    esc,
    facts,
    join,
    link,
    ms,
    path_part,
    section,
    table,
)
from controlplane.dashboard.rollout_view import (
    batch_label,
    next_batch,
    state_badge,
    strategy_facts,
)
from controlplane.dashboard.shadow_view import batch_shadow, device_shadow, shadows_table
from controlplane.paging import DevicePage, FleetCounts
from controlplane.rollouts.actions import Action
from controlplane.rollouts.plan import counted
from controlplane.rollouts.states import actions, allows, is_driven
from controlplane.schemas import (
    DevicePublic,
    FiguresPublic,
    PinPublic,
    RolloutPublic,
    RolloutSummary,
)

#: How many rollouts the overview lists (newest first).
RECENT_ROLLOUTS = 20


def device_href(device_id: str) -> str:
    return f"/dashboard/devices/{path_part(device_id)}"


def rollout_href(rollout_id: int) -> str:
    return f"/dashboard/rollouts/{rollout_id}"


def fleet_href(fleet: str) -> str:
    return finder.href({"fleet": fleet})


def _labels(labels: Mapping[str, str]) -> str | None:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def _online(device: DevicePublic) -> Markup:
    return badge("online" if device.online else "offline")


def _served_figures(device: DevicePublic) -> dict[str, Any] | None:
    """The last heartbeat's figures for the version the device serves, if any."""
    heartbeat = device.last_heartbeat or {}
    for entry in heartbeat.get("models") or []:
        if (
            entry.get("name") == device.active_model
            and entry.get("version") == device.active_version
        ):
            figures: dict[str, Any] = entry
            return figures
    return None


def _model(device: DevicePublic) -> str | None:
    if device.active_model is None:
        return None
    return f"{device.active_model} {device.active_version}"


def _short(text: str | None, limit: int = 80) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _progress(rollout: RolloutSummary) -> str:
    c = rollout.counts
    done = c.activated + c.failed + c.regressed + c.rolled_back + c.skipped
    return f"{done}/{c.total}"


def _deadline(rollout: RolloutSummary) -> str | None:
    """When a device still installing or retrying counts as failed."""
    seconds = rollout.strategy.get("install_timeout_s")
    if not isinstance(seconds, int | float):
        return None
    period = (rollout.strategy.get("shadow") or {}).get("duration_s")
    if isinstance(period, int | float):  # the deadline leaves room for the shadow period
        seconds += period
    return f"{seconds:g} s after its batch starts, a device not active has failed"


def _batch(rollout: RolloutSummary) -> str:
    return f"{min(rollout.current_batch + 1, len(rollout.batches))}/{len(rollout.batches)}"


# -- the overview ----------------------------------------------------------------------


def _fleets_table(summary: Sequence[FleetCounts], busy: Sequence[RolloutSummary]) -> Markup:
    counts = {c.fleet: c for c in summary}
    names = sorted(set(counts) | {r.fleet for r in busy})
    running = Counter(r.fleet for r in busy)
    rows = []
    for name in names:
        c = counts.get(name) or FleetCounts(name, 0, 0, 0, 0)
        rows.append(
            [
                link(fleet_href(name), name),
                c.devices,
                c.online,
                c.serving,
                c.failed,
                running.get(name, 0),
            ]
        )
    headers = ["fleet", "devices", "online", "serving", "failed", "rollouts in progress"]
    return table(headers, rows, empty="No fleet has a device yet.")


def _rollouts_table(rollouts: Sequence[RolloutSummary], now: datetime) -> Markup:
    newest = sorted(rollouts, key=lambda r: r.id, reverse=True)[:RECENT_ROLLOUTS]
    rows = [
        [
            link(rollout_href(r.id), r.id),
            f"{r.model} {r.version}",
            r.fleet,
            state_badge(r),
            _batch(r),
            _progress(r),
            r.counts.failed,
            r.counts.regressed,
            _short(r.reason),
            ago(r.updated_at, now),
        ]
        for r in newest
    ]
    headers = [
        "id",
        "model",
        "fleet",
        "state",
        "batch",
        "finished",
        "failed",
        "regressed",
        "reason",
        "updated",
    ]
    return table(headers, rows, empty="No rollout yet.")


def _pin(device: DevicePublic, *, long: bool = False) -> str | None:
    """The device's pin and its answer: ``openvino:CPU:bf16 (not honoured: ...)``."""
    return _pin_text(device.pin, long=long)


def _pin_text(pin: PinPublic | None, *, long: bool = False) -> str | None:
    """A pin and its answer; ``long``: with whose it is and why it is not honoured."""
    if pin is None:
        return None
    source = f"{pin.source} model" if pin.for_model else pin.source
    text = pin.backend + (f" ({source})" if long else "")
    if pin.state is not None:
        why = f": {pin.reason}" if pin.reason and long else ""
        text += f", {pin.state}{why}"
    return text


def _devices_table(devices: Sequence[DevicePublic], now: datetime, *, empty: str) -> Markup:
    rows = []
    for d in sorted(devices, key=lambda d: d.id):
        figures = _served_figures(d) or {}
        heartbeat = d.last_heartbeat or {}
        rows.append(
            [
                link(device_href(d.id), d.id),
                d.fleet,
                _online(d),
                badge(d.status),
                _model(d),
                d.backend,
                _pin(d),
                ms(figures.get("p95_ms")),
                figures.get("requests"),
                heartbeat.get("cpu_percent"),
                ago(d.last_seen_at, now),
                _labels(d.labels),
                _short(d.last_error),
            ]
        )
    headers = [
        "device",
        "fleet",
        "link",
        "status",
        "model",
        "backend",
        "pin",
        "p95",
        "requests",
        "cpu %",
        "last seen",
        "labels",
        "last error",
    ]
    return table(headers, rows, empty=empty)


def _devices_section(
    devices: DevicePage, found: finder.Finder, now: datetime, after: str | None
) -> Markup:
    """The filter form, a page of devices and the links to the first and next pages."""
    title = f"Devices after {after}" if after else "Devices"
    empty = "No device matches." if found.fields else "No device has registered yet."
    body = join(
        [
            finder.form(found.fields),
            _devices_table(devices.devices, now, empty=empty),
            finder.pager(found.fields, after=after, next_after=devices.next_after),
        ]
    )
    return section(title, body)


def overview(
    devices: DevicePage,
    summary: Sequence[FleetCounts],
    rollouts: Sequence[RolloutSummary],
    busy: Sequence[RolloutSummary],
    *,
    found: finder.Finder,
    now: datetime,
    after: str | None = None,
    attention: Markup | None = None,
) -> Markup:
    """What needs ``attention`` first, fleets (their counts, ``summary``, with the
    rollouts in progress, ``busy``), recent rollouts and a page of devices (those
    ``found`` asks for, after ``after``)."""
    fleet = found.wanted.fleet
    parts = [attention or Markup("")]
    if fleet is not None:
        parts.append(
            Markup(f'<p class="filter">fleet {esc(fleet)} · {link("/dashboard", "all fleets")}</p>')
        )
    else:
        parts.append(section("Fleets", _fleets_table(summary, busy)))
    parts.append(section("Rollouts", _rollouts_table(rollouts, now)))
    parts.append(_devices_section(devices, found, now, after))
    return join(parts)


# -- one device ------------------------------------------------------------------------


def _metrics_table(device: DevicePublic) -> Markup:
    rows = [
        [
            f"{m.get('name')} {m.get('version')}",
            m.get("backend"),
            m.get("requests"),
            m.get("errors"),
            m.get("client_errors") or 0,
            ms(m.get("p50_ms")),
            ms(m.get("p95_ms")),
            ms(m.get("p99_ms")),
        ]
        for m in (device.last_heartbeat or {}).get("models") or []
    ]
    headers = ["model", "backend", "requests", "errors", "client errors", "p50", "p95", "p99"]
    return table(headers, rows, empty="No inference figures in the last heartbeat.")


def _mib(value: int | None) -> str | None:
    return None if value is None else f"{value / 2**20:.1f} MiB"


def _models_table(device: DevicePublic) -> Markup:
    """Every model the device serves or failed to install, with its share and figures."""
    rows = [
        [
            m.name,
            m.version,
            badge(m.state),
            m.backend,
            _pin_text(m.pin, long=True),
            m.priority,
            m.threads,
            m.concurrency,
            _mib(m.memory_bytes),
            m.requests,
            m.errors,
            ms(m.p95_ms),
            m.reason,
        ]
        for m in device.models
    ]
    headers = ["model", "version", "state", "backend", "pin", "priority", "threads"]
    headers += ["concurrency", "memory", "requests", "errors", "p95", "reason"]
    return table(headers, rows, empty="No model reported.")


def _memory(device: DevicePublic) -> str | None:
    m = device.memory
    if m is None:
        return None
    return f"{_mib(m.models_bytes)} of {_mib(m.budget_bytes)}, {_mib(m.headroom_bytes)} headroom"


def _host(heartbeat: Mapping[str, Any]) -> list[tuple[str, object]]:
    if not heartbeat:
        return []
    load = heartbeat.get("load_avg") or []
    return [
        ("cpu", f"{heartbeat.get('cpu_percent')} %"),
        ("memory", f"{heartbeat.get('mem_percent')} %"),
        ("load average", " ".join(f"{x:.2f}" for x in load) or None),
        ("uptime", f"{int(heartbeat.get('uptime_s') or 0)} s"),
    ]


def device_page(device: DevicePublic, *, now: datetime) -> Markup:
    about = facts(
        [
            ("fleet", link(fleet_href(device.fleet), device.fleet)),
            ("link", _online(device)),
            ("status", badge(device.status)),
            ("model", _model(device)),
            ("backend", device.backend),
            ("bundle", device.active_bundle_digest),
            ("model memory", _memory(device)),
            ("generation", f"{device.reported_generation} reported / {device.generation} sent"),
            ("last error", device.last_error),
            ("agent", device.agent_version),
            (
                "profile",
                link(finder.href({"profile": device.profile}), device.profile)
                if device.profile
                else None,
            ),
            ("runtimes", ", ".join(device.runtimes) or None),
            ("labels", _labels(device.labels)),
            ("pinned backend", _pin(device, long=True)),
            ("last seen", ago(device.last_seen_at, now)),
            ("last heartbeat", ago(device.last_heartbeat_at, now)),
            ("registered", ago(device.created_at, now)),
            *_host(device.last_heartbeat or {}),
        ]
    )
    return join(
        [
            section("Device", about),
            section("Models", _models_table(device)),
            section("Inference", _metrics_table(device)),
            section("Backend selection", trend_pages.selections(device)),
            *(
                [section("Shadow evaluation", shadows_table(device.shadows))]
                if device.shadows
                else []
            ),
        ]
    )


# -- one rollout -----------------------------------------------------------------------


def _figures(f: FiguresPublic | None) -> str | None:
    if f is None:
        return None
    p95 = f"p95 {f.p95_ms:.2f} ms, " if f.p95_ms is not None else ""
    return f"{p95}{f.requests} requests, {f.errors} errors"


def gate_wait(rollout: RolloutPublic) -> str | None:
    """Why a running batch whose devices activated is not done: the health gate still
    waits for traffic on some of them (None if it does not)."""
    gate = rollout.strategy.get("gate") or {}
    batch = next((b for b in rollout.batches if b.index == rollout.current_batch), None)
    if not is_driven(rollout.state) or gate.get("enabled") is False or batch is None:
        return None
    if batch.state != "running":
        return None
    needed = int(gate.get("min_requests", 100))
    waiting = [
        d
        for d in rollout.devices
        if d.batch == rollout.current_batch
        and d.status == "activated"
        and (d.observed.requests if d.observed is not None else 0) < needed
    ]
    if not waiting:
        return None
    idle_s = int(float(gate.get("no_traffic_timeout_s", 300.0)))
    return (
        f"health gate: waiting for {needed} requests on {counted(len(waiting))}; "
        f"a device without them passes {idle_s} s after it activated"
    )


def allowed_actions(rollout: RolloutSummary) -> list[Action]:
    """What may be done to the rollout in its state (what the API would not refuse): the
    table of :mod:`controlplane.rollouts.states`."""
    return actions(rollout.state, has_previous=rollout.rollback_devices > 0)


def action_label(rollout: RolloutSummary, action: Action) -> str:
    if action is Action.ROLLBACK:
        count = rollout.rollback_devices
        return f"Roll back {count} device{'s' if count != 1 else ''} to their previous version"
    return action.value.capitalize()


def action_href(rollout_id: int, action: Action) -> str:
    return f"{rollout_href(rollout_id)}/{action.value}"


def rollout_controls(rollout: RolloutSummary, *, may_act: bool) -> Markup:
    """Links to the forms of what may be done now (``may_act`` False: a viewer)."""
    if not may_act:
        return Markup(
            '<p class="hint">Sign in with an operator token to pause, resume, abort or '
            "roll back.</p>"
        )
    actions = allowed_actions(rollout)
    if not actions:
        if allows(rollout.state, Action.ROLLBACK):  # done, and no device to send back
            return Markup(
                f'<p class="hint">Nothing to do: the rollout is {esc(rollout.state)} and '
                "nothing to roll back (every device it updated is back on its previous "
                "version, or was sent a later deployment since).</p>"
            )
        return Markup(f'<p class="hint">Nothing to do: the rollout is {esc(rollout.state)}.</p>')
    links = [
        Markup(
            f'<a class="button" href="{esc(action_href(rollout.id, a))}">'
            f"{esc(action_label(rollout, a) + '…')}</a>"
        )
        for a in actions
    ]
    return Markup(f'<p class="actions">{join(links, " ")}</p>')


#: What each action's form says it will do.
_EFFECT = {
    Action.PAUSE: "No further batch starts; devices already sent the version carry on.",
    Action.RESUME: "Batches start again where the rollout stopped.",
    Action.ABORT: "Every device already sent the new version goes back to the version it "
    "ran before; pending devices keep what they run (skipped).",
    Action.ROLLBACK: "A new rollout sends each device this rollout updated back to the "
    "version it ran before it, all at once, gated like any rollout. Devices an abort "
    "already restored, or that were sent a later deployment, are left alone.",
}


def action_form(rollout: RolloutSummary, action: Action, *, csrf: str) -> Markup:
    """The confirmation page of one action: what it does, a reason, a box to tick."""
    label = action_label(rollout, action)
    state = Markup(
        f"<p>Rollout {link(rollout_href(rollout.id), rollout.id)}: "
        f"{esc(f'{rollout.model} {rollout.version} to fleet {rollout.fleet}')} "
        f"{badge(rollout.state)}</p>"
    )
    fields = [Markup(f'<input type="hidden" name="csrf" value="{esc(csrf)}">')]
    if action is not Action.ROLLBACK:
        fields.append(
            Markup('<input name="reason" maxlength="500" placeholder="reason (optional)">')
        )
    if action in (Action.ABORT, Action.ROLLBACK):
        fields.append(
            Markup(
                '<label><input type="checkbox" name="confirm" value="yes" required> '
                "I mean it</label>"
            )
        )
    form = Markup(
        f'<form class="action" method="post" action="{esc(action_href(rollout.id, action))}">'
        f'{join(fields)}<button type="submit">{esc(label)}</button> '
        f"{link(rollout_href(rollout.id), 'cancel')}</form>"
    )
    return join([state, Markup(f"<p>{esc(_EFFECT[action])}</p>"), form])


def rollout_page(rollout: RolloutPublic, *, now: datetime, may_act: bool = False) -> Markup:
    selector = _labels(rollout.selector) or "every device"
    about = facts(
        [
            ("model", f"{rollout.model} {rollout.version}"),
            ("fleet", link(fleet_href(rollout.fleet), rollout.fleet)),
            ("selector", selector),
            ("state", state_badge(rollout)),
            ("reason", rollout.reason),
            *[("strategy adjusted", n.removeprefix("strategy adjusted: ")) for n in rollout.notes],
            ("device deadline", _deadline(rollout)),
            *([("waiting", waiting)] if (waiting := gate_wait(rollout)) else []),
            ("batch", _batch(rollout)),
            *([("next batch", upcoming)] if (upcoming := next_batch(rollout, now)) else []),
            ("finished", _progress(rollout)),
            ("previous version", rollout.previous_version),
            (
                "rollback of",
                link(rollout_href(rollout.rollback_of), rollout.rollback_of)
                if rollout.rollback_of is not None
                else None,
            ),
            ("created", ago(rollout.created_at, now)),
            ("updated", ago(rollout.updated_at, now)),
        ]
    )
    # the shadow columns only for a rollout with a shadow period (or figures of one)
    shadowed = bool(rollout.strategy.get("shadow")) or any(d.shadow for d in rollout.devices)
    batches = [
        [
            batch_label(rollout, b),
            b.size,
            badge(b.state),
            b.counts.activated,
            b.counts.failed,
            b.counts.regressed,
            b.counts.pending + b.counts.updating + b.counts.retrying,
            ago(b.started_at, now),
            ago(b.done_at, now),
            *([batch_shadow(b.shadow)] if shadowed else []),
        ]
        for b in rollout.batches
    ]
    devices = [
        [
            link(device_href(d.device_id), d.device_id),
            d.batch + 1,
            badge(d.status),
            _figures(d.baseline),
            _figures(d.observed),
            *([device_shadow(d.shadow)] if shadowed else []),
            d.reason,
        ]
        for d in rollout.devices
    ]
    history = [[ago(h.at, now), h.event, h.message] for h in reversed(rollout.history)]
    batch_headers = [
        "batch",
        "size",
        "state",
        "active",
        "failed",
        "regressed",
        "pending",
        "started",
        "done",
        *(["shadow"] if shadowed else []),
    ]
    return join(
        [
            section("Rollout", about),
            section("Actions", rollout_controls(rollout, may_act=may_act)),
            section("Strategy", strategy_facts(rollout)),
            section("Batches", table(batch_headers, batches, empty="No batch.")),
            section(
                "Devices",
                table(
                    ["device", "batch", "status", "before", "now"]
                    + (["shadow"] if shadowed else [])
                    + ["reason"],
                    devices,
                    empty="No target device.",
                ),
            ),
            section("History", table(["when", "event", "message"], history, empty="Nothing yet.")),
        ]
    )


def login_form(error: str | None = None) -> Markup:
    problem = f'<p class="error">{esc(error)}</p>' if error else ""
    return Markup(
        f"{problem}"
        '<form class="login" method="post" action="/dashboard/login">'
        '<label for="token">API token (a viewer token is enough)</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        "required autofocus>"
        '<button type="submit">Sign in</button></form>'
        '<p class="hint">Create one with <code>edgectl tokens create --name dashboard --role viewer'
        "</code>.</p>"
    )
