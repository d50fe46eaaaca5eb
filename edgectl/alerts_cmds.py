"""``edgectl alerts add|list|remove|deliveries|test``: webhooks on rollout and device events.

``alerts add URL`` registers a webhook (all event types unless ``--events``) and
prints its signing secret once, unless the operator gave one (``--secret-file`` or
``EDGECTL_ALERT_SECRET``). ``alerts deliveries [ID]`` shows each delivery's state
(pending, delivered, failed), attempts, last answer and next attempt. ``alerts test ID``
sends a ping and waits for its first attempt. Every command takes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.connect import connect
from edgectl.durations import format_duration, parse_duration
from edgectl.errors import EdgectlError, UsageError
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers

SECRET_ENV = "EDGECTL_ALERT_SECRET"
EVENT_TYPES = (
    "rollout.paused",
    "rollout.aborted",
    "rollout.completed",
    "device.failed",
    "device.regressed",
    "device.offline",
)
STATES = ("pending", "delivered", "failed")


class NotDelivered(EdgectlError):
    """A test ping that was not delivered (exit 1)."""


# -- the API (edgectl reaches the server over HTTP only) --------------------------------


def _api(client: ControlPlaneClient, method: str, path: str, **kwargs: Any) -> Any:
    return client._json(method, f"/api/v1/alerts{path}", **kwargs)


# -- argument values --------------------------------------------------------------------


def _events(text: str | None) -> list[str] | None:
    if text is None:
        return None
    events = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        raise UsageError(
            f"invalid --events {text!r}: a comma-separated list of {', '.join(EVENT_TYPES)}"
        )
    return events


def _secret(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The secret the operator gives (``--secret-file``, else the environment) and where
    it came from; (None, None): the control plane makes one."""
    if args.secret_file is not None:
        try:
            secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --secret-file {args.secret_file}: {exc}") from exc
        source = str(args.secret_file)
    elif os.environ.get(SECRET_ENV):
        secret, source = os.environ[SECRET_ENV].strip(), SECRET_ENV
    else:
        return None, None
    if not 16 <= len(secret) <= 256:
        raise UsageError(f"the secret from {source} must be 16 to 256 characters")
    return secret, source


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _counts(webhook: dict[str, Any]) -> str:
    c = webhook.get("deliveries") or {}
    return f"{c.get('pending', 0)}/{c.get('delivered', 0)}/{c.get('failed', 0)}"


# -- commands ---------------------------------------------------------------------------


def _cmd_add(args: argparse.Namespace) -> int:
    secret, source = _secret(args)
    body: dict[str, Any] = {
        "url": args.webhook_url,
        "offline_after_s": round(parse_duration(args.offline_after, what="--offline-after")),
    }
    if (events := _events(args.events)) is not None:
        body["events"] = events
    if secret is not None:
        body["secret"] = secret
    if args.description:
        body["description"] = args.description
    with connect(args) as client:
        created = _api(client, "POST", "/webhooks", json=body)
    if args.json:
        if secret is not None:  # the operator has it: not echoed
            created.pop("secret", None)
        _print_json(created)
        return 0
    offline = format_duration(created["offline_after_s"])
    print(f"webhook {created['id']}: {created['url']}")
    print(f"events: {', '.join(created['events'])} (device.offline after {offline})")
    if secret is None:
        print(f"secret: {created['secret']}")
        print("it is shown only now: keep it with the receiver, which checks each signature")
    else:
        print(f"signed with the secret from {source}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        webhooks = _api(client, "GET", "/webhooks")
    if args.json:
        _print_json(webhooks)
        return 0
    if not webhooks:
        print("no webhooks (add one with: edgectl alerts add URL)")
        return 0
    rows = [
        [
            w["id"],
            w["url"],
            ",".join(w["events"]),
            format_duration(w["offline_after_s"]),
            _counts(w),
            when(w["created_at"]),
        ]
        for w in webhooks
    ]
    headers = ["id", "url", "events", "offline after", "pending/delivered/failed", "created"]
    print(render(headers, rows))
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    with connect(args) as client:
        removed = _api(client, "DELETE", f"/webhooks/{args.id}")
    if args.json:
        _print_json(removed)
        return 0
    print(f"removed webhook {removed['id']} ({removed['url']}); nothing more is sent to it")
    return 0


def _delivery_row(d: dict[str, Any]) -> list[object]:
    return [
        d["id"],
        d["webhook_id"],
        d["event_type"],
        d["state"],
        f"{d['attempts']}/{d['max_attempts']}",
        d.get("last_status") or "-",
        d.get("last_error") or "-",
        when(d.get("next_attempt_at")) if d["state"] == "pending" else "-",
    ]


def _cmd_deliveries(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.id is not None:
        params["webhook_id"] = args.id
    if args.state:
        params["state"] = args.state
    with connect(args) as client:
        deliveries = _api(client, "GET", "/deliveries", params=params)
    if args.json:
        _print_json(deliveries)
        return 0
    if not deliveries:
        print("no deliveries")
        return 0
    headers = ["id", "webhook", "event", "state", "attempts", "status", "error", "next attempt"]
    print(render(headers, [_delivery_row(d) for d in deliveries]))
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout, what="--timeout")
    with connect(args) as client:
        delivery = _api(client, "POST", f"/webhooks/{args.id}/test")
        deadline = time.monotonic() + timeout
        while not args.no_wait and _unanswered(delivery) and time.monotonic() < deadline:
            time.sleep(0.2)
            delivery = _api(client, "GET", f"/deliveries/{delivery['id']}")
    if args.json:
        _print_json(delivery)
    else:
        _print_test(delivery, args.id)
    if args.no_wait or delivery["state"] == "delivered":
        return 0
    if _unanswered(delivery):
        raise NotDelivered(
            f"ping {delivery['id']} not attempted within {args.timeout} "
            "(is the control plane's alert dispatcher running?)"
        )
    raise NotDelivered(f"ping {delivery['id']} to webhook {args.id} was not delivered")


def _unanswered(delivery: dict[str, Any]) -> bool:
    """Whether a fresh ping's first attempt has no outcome yet (not made, or in flight)."""
    answered = delivery.get("last_status") is not None or delivery.get("last_error")
    return delivery["state"] == "pending" and not answered


def _print_test(delivery: dict[str, Any], webhook_id: int) -> None:
    state = delivery["state"]
    if state == "delivered":
        status = delivery["last_status"]
        print(f"ping {delivery['id']} delivered to webhook {webhook_id} (HTTP {status})")
    elif _unanswered(delivery):
        print(f"ping {delivery['id']} queued for webhook {webhook_id}")
    else:
        nxt = when(delivery.get("next_attempt_at")) if state == "pending" else "none"
        print(
            f"ping {delivery['id']} attempt {delivery['attempts']}/{delivery['max_attempts']} "
            f"failed: {delivery.get('last_error') or '?'}; next attempt: {nxt}"
        )


def add_commands(sub: SubParsers) -> None:
    """Register ``alerts add|list|remove|deliveries|test`` on the top-level subparsers."""
    alerts = sub.add_parser("alerts", help="webhooks on rollout and device events").add_subparsers(
        dest="alerts_cmd", required=True
    )
    add = alerts.add_parser("add", help="add a webhook; its secret is printed once")
    # a positional URL: --url is edgectl's global control-plane URL
    add.add_argument("webhook_url", metavar="URL", help="where to POST (http:// or https://)")
    add.add_argument(
        "--events",
        default=None,
        help=f"comma-separated event types (default: all: {','.join(EVENT_TYPES)})",
    )
    add.add_argument(
        "--offline-after",
        default="10m",
        help="device.offline once a device is offline this long (default: 10m)",
    )
    add.add_argument(
        "--secret-file",
        type=Path,
        default=None,
        help=f"sign with the secret in this file (or env {SECRET_ENV}; default: a new one)",
    )
    add.add_argument("--description", default=None, help="what the webhook is for")
    list_ = alerts.add_parser("list", help="list webhooks (never their secrets)")
    remove = alerts.add_parser("remove", help="remove a webhook and its deliveries")
    remove.add_argument("id", type=int, metavar="ID", help="the webhook's id (alerts list)")
    deliveries = alerts.add_parser("deliveries", help="deliveries, newest first, and their state")
    deliveries.add_argument("id", type=int, nargs="?", metavar="ID", help="only this webhook's")
    deliveries.add_argument("--state", choices=STATES, default=None, help="only this state")
    deliveries.add_argument("--limit", type=int, default=50, help="at most this many (default: 50)")
    test = alerts.add_parser("test", help="send a ping and wait for its first attempt")
    test.add_argument("id", type=int, metavar="ID", help="the webhook's id (alerts list)")
    test.add_argument("--timeout", default="30s", help="how long to wait (default: 30s)")
    test.add_argument("--no-wait", action="store_true", help="queue the ping and return")
    handlers = {
        add: _cmd_add,
        list_: _cmd_list,
        remove: _cmd_remove,
        deliveries: _cmd_deliveries,
        test: _cmd_test,
    }
    for parser, handler in handlers.items():
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")
        parser.set_defaults(handler=handler)
