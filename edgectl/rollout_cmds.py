"""``edgectl rollouts list|show|pause|resume|abort`` and ``edgectl rollback``; and
``watch``, the live view ``push model`` and ``rollback`` end with.

``rollouts show ID`` prints the batches, every device (status, reason, baseline and
observed figures) and the history; ``--watch`` follows it live. ``rollback ID`` starts a
new all-at-once rollout, gated unless ``--no-gate``, sending each device rollout ID
updated back to the version it ran before it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.connect import connect
from edgectl.durations import parse_duration
from edgectl.live import LiveView, gate_rule, history_line, render_rollout, status_line, title
from edgectl.shadow_text import batch_shadows, device_shadow
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers
from edgectl.values import format_labels, parse_positive_int
from edgectl.wait import follow_rollout, outcome, waiting_note

STATES = ("running", "paused", "completed", "aborted")


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """``--detach``, ``--timeout`` and ``--json`` of a command that ends in the live view."""
    parser.add_argument("--detach", action="store_true", help="return once the rollout is started")
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        help="stop watching after this long (exit 5; the rollout goes on), e.g. 10m",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the rollout as JSON when it stops running"
    )


def watch_timeout(args: argparse.Namespace) -> float | None:
    """``--timeout`` in seconds (checked before anything is sent)."""
    return parse_duration(args.timeout, what="--timeout") if args.timeout else None


def watch(
    client: ControlPlaneClient,
    rollout: dict[str, Any],
    *,
    as_json: bool,
    detach: bool,
    timeout: float | None,
    json_of: Callable[[dict[str, Any]], object] = lambda r: r,
) -> int:
    """Show ``rollout`` live until it stops running (or print it and return: ``detach``).

    With ``as_json`` nothing is drawn; the last answer (shaped by ``json_of``) is printed.
    Exit code: 0 completed on every device; 1 aborted or devices failed; 4 paused; 5 still
    running after ``timeout``; 130 on Ctrl-C (the rollout goes on server-side)."""
    rid = int(rollout["id"])
    if detach:
        if as_json:
            print(json.dumps(json_of(rollout), indent=2))
        else:
            print(f"{title(rollout)}  [{status_line(rollout)}]")
            print(f"follow it: edgectl rollouts show {rid} --watch")
            if rule := gate_rule(rollout):
                print(rule)
        return 0
    view = LiveView(sys.stdout)
    try:
        followed = follow_rollout(
            client,
            rid,
            first=rollout,
            timeout=timeout,
            on_update=(lambda _: None) if as_json else view.update,
            on_note=(lambda _: None) if as_json else view.note,
        )
    except KeyboardInterrupt:
        print(
            f"\nrollout {rid} continues on the control plane: edgectl rollouts show {rid}"
            + waiting_note(view.last or rollout),
            file=sys.stderr,
        )
        return 130
    if as_json:
        print(json.dumps(json_of(followed.rollout), indent=2))
    message = outcome(followed)  # raises for aborted, failed devices, paused, timed out
    if not as_json:
        print(message)
    return 0


def _figures(figures: Mapping[str, Any] | None) -> str:
    """``{requests, errors, p95_ms}`` as ``p95 10.2 ms, 0.5% errors (400 req)``."""
    if not figures:
        return "-"
    requests = int(figures.get("requests") or 0)
    errors = int(figures.get("errors") or 0)
    p95 = figures.get("p95_ms")
    rate = errors / requests * 100 if requests else 0.0
    latency = f"p95 {float(p95):.1f} ms" if p95 is not None else "p95 -"
    return f"{latency}, {rate:.1f}% err, {requests} req"


def render_details(rollout: Mapping[str, Any]) -> str:
    """``rollouts show``: the live view, then every device, then the whole history."""
    lines = render_rollout(rollout)[:-1] if rollout.get("history") else render_rollout(rollout)
    lines += batch_shadows(rollout.get("batches") or [])
    devices = rollout.get("devices") or []
    if devices:
        shadowed = any(d.get("shadow") for d in devices)
        rows = [
            [
                d.get("device_id"),
                int(d.get("batch") or 0) + 1,
                d.get("status"),
                _figures(d.get("baseline")),
                _figures(d.get("observed")),
                *([device_shadow(d.get("shadow"))] if shadowed else []),
                d.get("reason") or "",
            ]
            for d in devices
        ]
        headers = ["device", "batch", "status", "baseline", "observed"]
        headers += [*(["shadow"] if shadowed else []), "reason"]
        lines += ["", *render(headers, rows).splitlines()]
    history = rollout.get("history") or []
    if history:
        lines += ["", "history:", *(f"  {history_line(e)}" for e in history)]
    extra = []
    if rollout.get("previous_version"):
        extra.append(f"previous version: {rollout['previous_version']}")
    if rollout.get("deployment_id") is not None:
        extra.append(f"deployment: {rollout['deployment_id']}")
    return "\n".join([*lines, *(["", *extra] if extra else [])])


def _rollout_id(text: str) -> int:
    return parse_positive_int(text, what="rollout id")


def _cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        rollouts = client.rollouts(fleet=args.fleet, state=args.state)
    if args.json:
        print(json.dumps(rollouts, indent=2))
        return 0
    rows: list[list[object]] = []
    for r in rollouts:
        counts = r.get("counts") or {}
        batches = r.get("batches") or []
        current = r.get("current_batch")
        rows.append(
            [
                r.get("id"),
                r.get("model"),
                r.get("version"),
                r.get("fleet"),
                format_labels(r.get("selector") or {}),
                r.get("state"),
                f"{max(int(current or 0), 0) + 1}/{len(batches)}" if batches else "-",
                f"{counts.get('activated', 0)}/{counts.get('total', 0)}",
                counts.get("failed", 0) + counts.get("regressed", 0),
                when(r.get("updated_at")),
            ]
        )
    headers = ["id", "model", "version", "fleet", "selector", "state", "batch", "active"]
    print(render([*headers, "failed", "updated"], rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    rid = _rollout_id(args.id)
    timeout = watch_timeout(args)
    with connect(args) as client:
        rollout = client.rollout(rid)
        if args.watch:
            return watch(client, rollout, as_json=args.json, detach=False, timeout=timeout)
    print(json.dumps(rollout, indent=2) if args.json else render_details(rollout))
    return 0


def _cmd_action(args: argparse.Namespace) -> int:
    rid = _rollout_id(args.id)
    with connect(args) as client:
        rollout = client.rollout_action(rid, args.rollouts_cmd, reason=args.reason)
    if args.json:
        print(json.dumps(rollout, indent=2))
    else:
        print(f"{title(rollout)}  [{status_line(rollout)}]")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    rid = _rollout_id(args.id)
    timeout = watch_timeout(args)
    with connect(args) as client:
        rollout = client.rollback(rid, gate=not args.no_gate)
        return watch(client, rollout, as_json=args.json, detach=args.detach, timeout=timeout)


def add_commands(sub: SubParsers) -> None:
    """Register ``rollouts list|show|pause|resume|abort`` and ``rollback``."""
    rollouts = sub.add_parser("rollouts", help="rollouts: status and operator controls")
    cmds = rollouts.add_subparsers(dest="rollouts_cmd", required=True)

    list_ = cmds.add_parser("list", help="list rollouts, oldest first")
    list_.add_argument("--fleet", help="only this fleet's")
    list_.add_argument("--state", choices=STATES, help="only rollouts in this state")
    list_.add_argument("--json", action="store_true", help="print the API objects")
    list_.set_defaults(handler=_cmd_list)

    show = cmds.add_parser("show", help="batches, devices and history of a rollout")
    show.add_argument("id", metavar="ID")
    show.add_argument("--watch", action="store_true", help="follow it live until it stops")
    show.add_argument(
        "--timeout", metavar="DURATION", help="with --watch: stop watching after this long"
    )
    show.add_argument("--json", action="store_true", help="print the API object")
    show.set_defaults(handler=_cmd_show)

    helps = {
        "pause": "pause: no further batch starts until resumed",
        "resume": "resume a paused rollout",
        "abort": "abort: devices already updated go back to their previous version",
    }
    for action, text in helps.items():
        cmd = cmds.add_parser(action, help=text)
        cmd.add_argument("id", metavar="ID")
        cmd.add_argument("--reason", help="why (recorded in the rollout's history)")
        cmd.add_argument("--json", action="store_true", help="print the API object")
        cmd.set_defaults(handler=_cmd_action)

    rollback = sub.add_parser(
        "rollback",
        help="send each device a rollout updated back to the version it ran before",
        description="A new rollout, all at once and gated like any rollout (--no-gate: "
        "ungated), sending each device rollout ID updated back to its own previous version. "
        "Refused when there is nothing to roll back (an abort already did) and for a running "
        "or paused rollout (abort it). To send a version by name, push or roll it out.",
    )
    rollback.add_argument("id", metavar="ID", help="the rollout to undo")
    rollback.add_argument("--no-gate", action="store_true", help="no health gate")
    add_watch_options(rollback)
    rollback.set_defaults(handler=_cmd_rollback)
