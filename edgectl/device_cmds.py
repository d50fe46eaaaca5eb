"""``edgectl devices list|show|label|enroll|revoke|reselect``.

``devices list [--fleet F] [--selector k=v,...]`` is one row per device;
``devices show ID`` adds labels, hardware profile, runtimes, the inference figures of
each model version from its latest heartbeat, and how each model's backend was chosen
(every candidate's p50, p99, runs, max error against the reference, or why it was
excluded); ``devices label ID k=v k2-`` sets ``k`` and
removes ``k2`` (kubectl style). Selectors and labels are checked here before anything is
sent (exit 2). ``devices enroll ID --fleet F [--ttl 24h]`` prints a one-time enrollment
token for the device (``edge-agent enroll --token ...`` on the device redeems it);
``devices revoke ID`` cuts a device off; ``devices reselect ID [--model M]`` has the
device measure its backend choice again (its cached choice dropped).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from edgectl.connect import connect
from edgectl.durations import parse_duration
from edgectl.errors import UsageError
from edgectl.progress import format_bytes
from edgectl.shadow_text import shadows_table
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers
from edgectl.values import format_labels, parse_label_edits, parse_selector

#: The control plane's limit on an enrollment token's life (30 days).
MAX_ENROLLMENT_TTL_S = 30 * 24 * 3600


#: How many models ``devices list`` names in its MODELS cell before ``+N more``.
LIST_MODELS = 3


def _model(device: Mapping[str, Any]) -> str:
    return f"{device.get('active_model') or '-'} {device.get('active_version') or ''}".strip()


def _models_cell(device: Mapping[str, Any]) -> str:
    """``det 1.4.0, cls 2.0.1 (failed)``: every model, the first ``LIST_MODELS`` named."""
    models = device.get("models") or []
    if not models:
        return _model(device)  # an older control plane: its one active model
    named = [
        f"{m.get('name')} {m.get('version')}"
        + ("" if m.get("state") == "active" else f" ({m.get('state')})")
        for m in models[:LIST_MODELS]
    ]
    more = len(models) - LIST_MODELS
    return ", ".join(named) + (f" +{more} more" if more > 0 else "")


def _headroom(device: Mapping[str, Any]) -> str:
    memory = device.get("memory") or {}
    return format_bytes(int(memory["headroom_bytes"])) if memory else "-"


def _memory_line(memory: Mapping[str, Any]) -> str:
    used, budget = (
        format_bytes(int(memory["models_bytes"])),
        format_bytes(int(memory["budget_bytes"])),
    )
    return f"{used} of {budget} budget, {format_bytes(int(memory['headroom_bytes']))} headroom"


def _link(device: Mapping[str, Any]) -> str:
    return "online" if device.get("online") else "offline"


def _ms(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.1f}"


def pin_answer(pin: Mapping[str, Any], *, long: bool = False) -> str:
    """``, not honoured: <why>`` / ``, honoured`` / ``, waiting``; empty without an answer."""
    state = pin.get("state")
    if not state:
        return ""
    why = f": {pin['reason']}" if long and pin.get("reason") else ""
    return f", {state}{why}"


def _pin_cell(device: Mapping[str, Any]) -> str:
    pin = device.get("pin") or {}
    return f"{pin['backend']}{pin_answer(pin)}" if pin else "-"


def _model_pin(pin: Mapping[str, Any]) -> str:
    """A model's pin in ``devices show``: ``KEY (device model), honoured``; ``-`` if none."""
    if not pin:
        return "-"
    source = f"{pin.get('source')} model" if pin.get("for_model") else pin.get("source")
    return f"{pin['backend']} ({source}){pin_answer(pin)}"


def render_device(device: Mapping[str, Any]) -> str:
    """``devices show``: one ``field: value`` line each, then the per-model figures."""
    digest = str(device.get("active_bundle_digest") or "")[:12]
    pin = device.get("pin") or {}
    if len(device.get("models") or []) > 1:  # each has its line below, backend included
        served_fields = [("models", _models_cell(device)), ("backend", "per model, below")]
    else:
        served_fields = [
            ("model", _model(device) + (f" (bundle {digest})" if digest else "")),
            ("backend", device.get("backend") or "-"),
        ]
    fields = [
        ("device", device.get("id")),
        ("fleet", device.get("fleet")),
        ("link", _link(device)),
        ("status", device.get("status")),
        ("agent", device.get("agent_version") or "-"),
        *served_fields,
        ("pin", f"{pin['backend']} ({pin['source']}){pin_answer(pin, long=True)}" if pin else "-"),
        ("labels", format_labels(device.get("labels") or {})),
        ("profile", device.get("profile") or "-"),
        ("runtimes", ", ".join(device.get("runtimes") or []) or "-"),
        ("local api", device.get("local_api") or "-"),
        ("last report", when(device.get("last_report_at"))),
        ("last heartbeat", when(device.get("last_heartbeat_at"))),
    ]
    heartbeat = device.get("last_heartbeat") or {}
    if heartbeat:
        cpu, mem = heartbeat.get("cpu_percent") or 0, heartbeat.get("mem_percent") or 0
        total = format_bytes(int(heartbeat.get("mem_total_bytes") or 0))
        host = f"cpu {cpu:.0f}%, mem {mem:.0f}% of {total}"
        fields.append(("host", host))
    if device.get("memory"):
        fields.append(("model memory", _memory_line(device["memory"])))
    if device.get("last_error"):
        fields.append(("last error", device["last_error"]))
    width = max(len(k) for k, _ in fields)
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in fields]
    served = device.get("models") or []
    if served:
        rows = [
            [
                m.get("name"),
                m.get("version"),
                m.get("state"),
                m.get("backend") or "-",
                _model_pin(m.get("pin") or {}),
                m.get("priority") or "-",
                m.get("threads") or "-",
                m.get("concurrency") or "-",
                format_bytes(int(m["memory_bytes"])) if m.get("memory_bytes") else "-",
                m.get("reason") or "",
            ]
            for m in served
        ]
        headers = ["model", "version", "state", "backend", "pin", "priority", "threads"]
        headers += ["concurrency", "memory", "reason"]
        lines += ["", *render(headers, rows).splitlines()]
    models = heartbeat.get("models") or []
    if models:
        rows = [
            [
                m.get("name"),
                m.get("version"),
                m.get("backend"),
                m.get("requests"),
                m.get("errors"),
                m.get("client_errors") or 0,
                _ms(m.get("p50_ms")),
                _ms(m.get("p95_ms")),
                _ms(m.get("p99_ms")),
            ]
            for m in models
        ]
        headers = ["model", "version", "backend", "requests", "errors", "client errors"]
        headers += ["p50 ms", "p95 ms"]
        lines += ["", *render([*headers, "p99 ms"], rows).splitlines()]
    if device.get("shadows"):
        lines += ["", *shadows_table(device["shadows"])]
    for name, selection in sorted((device.get("selections") or {}).items()):
        lines += ["", *render_selection(name, selection).splitlines()]
    return "\n".join(lines)


def _figure(value: object, spec: str = ".3f") -> str:
    return "-" if value is None else format(float(str(value)), spec)


def render_selection(name: str, selection: Mapping[str, Any]) -> str:
    """How a model's backend was chosen: a line, then every candidate's figures (the
    chosen one marked ``*``) or why it was excluded."""
    how = (
        "pinned" if selection.get("pinned") else "cached" if selection.get("cached") else "measured"
    )
    elapsed = float(selection.get("elapsed_s") or 0.0)
    head = (
        f"selection of {name} {selection.get('version') or ''}: "
        f"{selection.get('backend') or selection.get('chosen')} ({how} in {elapsed:.1f} s, "
        f"profile {selection.get('profile') or '-'}): {selection.get('reason') or '-'}"
    )
    chosen = selection.get("chosen")
    rows = [
        [
            ("* " if c.get("key") == chosen else "  ") + str(c.get("key")),
            _figure(c.get("p50_ms")),
            _figure(c.get("p99_ms")),
            c.get("runs") or 0,
            "-" if c.get("rel_error") is None else f"{100 * float(c['rel_error']):.2g}%",
            c.get("excluded") or "",
        ]
        for c in selection.get("candidates") or []
    ]
    if not rows:
        return head
    headers = ["candidate", "p50 ms", "p99 ms", "runs", "max error", "excluded"]
    return "\n".join([head, *render(headers, rows).splitlines()])


def _cmd_list(args: argparse.Namespace) -> int:
    selector = parse_selector(args.selector) if args.selector else None
    with connect(args) as client:
        devices = client.devices(fleet=args.fleet, selector=selector)
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    rows = [
        [
            d.get("id"),
            d.get("fleet"),
            _link(d),
            d.get("status"),
            _models_cell(d),
            _headroom(d),
            _pin_cell(d),
            format_labels(d.get("labels") or {}),
            when(d.get("last_report_at")),
        ]
        for d in devices
    ]
    headers = ["device", "fleet", "link", "status", "models", "headroom", "pin", "labels"]
    headers.append("last report")
    print(render(headers, rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        device = client.device(args.id)
    print(json.dumps(device, indent=2) if args.json else render_device(device))
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    edit = parse_label_edits(args.labels)
    with connect(args) as client:
        device = client.label_device(args.id, set_=edit.set, remove=edit.remove)
    if args.json:
        print(json.dumps(device, indent=2))
    else:
        print(f"{device.get('id')}: {format_labels(device.get('labels') or {})}")
    return 0


def _cmd_enroll(args: argparse.Namespace) -> int:
    ttl = parse_duration(args.ttl, what="--ttl")
    if not 60 <= ttl <= MAX_ENROLLMENT_TTL_S:
        raise UsageError("--ttl must be between 1m and 30d")
    with connect(args) as client:
        answer = client.create_enrollment(args.id, args.fleet, int(ttl))
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(answer["token"])
    print(
        f"one-time enrollment token for {answer['device_id']} in fleet {answer['fleet']}, "
        f"valid until {answer['expires_at']}; on the device run:\n"
        f"  edge-agent enroll --config /etc/edgefleet/agent.toml --token <token>",
        file=sys.stderr,
    )
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    with connect(args) as client:
        answer = client.revoke_device(args.id)
    print(json.dumps(answer, indent=2) if args.json else f"revoked {answer['device_id']}")
    return 0


def _cmd_reselect(args: argparse.Namespace) -> int:
    with connect(args) as client:
        answer = client.reselect_device(args.id, args.model)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    what = f"model {args.model}" if args.model else "every model"
    sent = "a new command sent" if answer.get("reissued") else "no new command (nothing deployed)"
    print(f"{answer['device']}: re-selection {answer['reselect']} of {what} asked; {sent}")
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``devices list|show|label|enroll|revoke|reselect``."""
    devices = sub.add_parser("devices", help="devices and their labels")
    cmds = devices.add_subparsers(dest="devices_cmd", required=True)

    list_ = cmds.add_parser("list", help="list devices")
    list_.add_argument("--fleet", help="only this fleet's")
    list_.add_argument("--selector", metavar="K=V,...", help="only devices with these labels")
    list_.add_argument("--json", action="store_true", help="print the API objects")
    list_.set_defaults(handler=_cmd_list)

    show = cmds.add_parser("show", help="one device: labels, profile, figures per model")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the API object")
    show.set_defaults(handler=_cmd_show)

    label = cmds.add_parser("label", help="set (k=v) or remove (k-) labels of a device")
    label.add_argument("id", metavar="ID")
    label.add_argument("labels", nargs="*", metavar="K=V|K-")
    label.add_argument("--json", action="store_true", help="print the API object")
    label.set_defaults(handler=_cmd_label)

    enroll = cmds.add_parser("enroll", help="a one-time enrollment token for a device")
    enroll.add_argument("id", metavar="ID")
    enroll.add_argument("--fleet", required=True, help="the fleet the device joins")
    enroll.add_argument("--ttl", default="24h", help="how long the token is valid (default 24h)")
    enroll.add_argument("--json", action="store_true", help="print the API object")
    enroll.set_defaults(handler=_cmd_enroll)

    revoke = cmds.add_parser("revoke", help="cut a device off: reports dropped, no commands")
    revoke.add_argument("id", metavar="ID")
    revoke.add_argument("--json", action="store_true", help="print the API object")
    revoke.set_defaults(handler=_cmd_revoke)

    reselect = cmds.add_parser(
        "reselect", help="measure a device's backend choice again (drops its cached choice)"
    )
    reselect.add_argument("id", metavar="ID")
    reselect.add_argument("--model", help="only this model (default: every model)")
    reselect.add_argument("--json", action="store_true", help="print the API object")
    reselect.set_defaults(handler=_cmd_reselect)
