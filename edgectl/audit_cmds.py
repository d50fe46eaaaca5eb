"""``edgectl audit``: who wrote what, when and from where (needs an operator token).

``edgectl audit [--since 1h|2026-12-05T10:00Z] [--by NAME] [--action rollout.pause|rollout.]
[--target "rollout 7"] [--limit N] [--json]`` lists the control plane's audit trail,
newest first: every write through the API, edgectl or the dashboard, by token name and
role, with the client's address and tool (user agent).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from edgectl.connect import connect
from edgectl.durations import parse_duration
from edgectl.errors import UsageError
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers

DEFAULT_LIMIT = 50


def since_param(text: str, *, now: datetime | None = None) -> str:
    """``--since`` as the API takes it: a duration back from now (``1h``, ``30m``) or an
    ISO 8601 time; UsageError (one line) for anything else."""
    try:
        seconds = parse_duration(text, what="--since")
    except UsageError:
        try:
            stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"invalid --since {text!r}: expected a duration (30m, 2h, 1d) or an ISO 8601 "
                "time (2026-12-05T10:00Z)"
            ) from None
        return (stamp if stamp.tzinfo else stamp.astimezone()).isoformat()
    return ((now or datetime.now(UTC)) - timedelta(seconds=seconds)).isoformat()


def _who(entry: dict[str, Any]) -> str:
    name = entry.get("token_name")
    return f"{name} ({entry.get('role')})" if name else "(no token)"


def _row(entry: dict[str, Any]) -> list[object]:
    return [
        entry.get("id"),
        when(entry.get("at")),
        _who(entry),
        entry.get("source"),
        entry.get("client_address") or "-",
        entry.get("user_agent") or "-",
        entry.get("action"),
        entry.get("target"),
        entry.get("status"),
    ]


def _cmd_audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"invalid --limit {args.limit}: at least 1")
    since = since_param(args.since) if args.since else None
    with connect(args) as client:
        entries = client.audit(
            since=since,
            token=args.token_name,
            action=args.action,
            target=args.target,
            limit=args.limit,
        )
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        filtered = any((since, args.token_name, args.action, args.target))
        print("no audit entries match" if filtered else "no audit entries")
        return 0
    headers = ["id", "when", "who", "source", "address", "tool", "action", "target", "status"]
    print(render(headers, [_row(e) for e in entries]))
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``audit`` on the top-level subparsers."""
    audit = sub.add_parser(
        "audit", help="who wrote what, when and from where, newest first (operator)"
    )
    audit.add_argument("--since", default=None, help="e.g. 1h, 2d or 2026-12-05T10:00Z")
    # not --token: that is the API token edgectl sends, accepted after the subcommand too
    audit.add_argument(
        "--by",
        dest="token_name",
        default=None,
        metavar="NAME",
        help="only the writes of the token named NAME",
    )
    audit.add_argument(
        "--action", default=None, help="e.g. rollout.pause; ending in '.': every rollout. action"
    )
    audit.add_argument("--target", default=None, help='e.g. "rollout 7" or "device d01"')
    audit.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most N entries (default {DEFAULT_LIMIT})",
    )
    audit.add_argument("--json", action="store_true", help="print the entries as JSON")
    audit.set_defaults(handler=_cmd_audit)
