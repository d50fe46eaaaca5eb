"""``edgectl timeline DEVICE`` and ``edgectl cohorts``: figures over time.

``timeline DEVICE [--kind K] [--limit N]`` lists what happened to a device, newest first:
deployment events, status changes, errors, backend selections (with every candidate's
figures), online/offline, and the rollouts that touched it. ``cohorts [--window 1h]
[--model M] [--fleet F]`` shows latency and errors by model version x backend x hardware
profile over the window.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from edgectl.connect import connect
from edgectl.table import render, when
from edgectl.trust_cmds import SubParsers

KINDS = ("deployment", "status", "error", "selection", "link", "rollout")
WINDOWS = ("15m", "1h", "6h", "24h", "7d", "30d")


def _ms(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.2f} ms"


def _candidates(entry: Mapping[str, Any]) -> list[str]:
    """A selection's candidates, one indented line each."""
    detail = entry.get("detail") or {}
    lines = []
    for c in detail.get("candidates") or []:
        mark = "*" if c.get("key") == detail.get("chosen") else " "
        figures = c.get("excluded") or (
            f"p50 {_ms(c.get('p50_ms'))}, p99 {_ms(c.get('p99_ms'))}, {c.get('runs')} runs"
        )
        lines.append(f"    {mark} {c.get('key')}: {figures}")
    return lines


def render_timeline(entries: list[Mapping[str, Any]]) -> str:
    rows = []
    for e in entries:
        model = " ".join(str(x) for x in (e.get("model"), e.get("version")) if x) or "-"
        where = f"rollout {e['rollout_id']}" if e.get("rollout_id") is not None else ""
        rows.append([when(e.get("at")), e.get("kind"), model, e.get("message"), where])
    lines = render(["when", "kind", "model", "what", "rollout"], rows).splitlines()
    out = lines[:1]
    for line, entry in zip(lines[1:], entries, strict=True):
        out += [line, *_candidates(entry)]
    return "\n".join(out)


def _cmd_timeline(args: argparse.Namespace) -> int:
    with connect(args) as client:
        entries = client.timeline(args.device, kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        print(f"nothing recorded for {args.device} yet")
    else:
        print(render_timeline(entries))
    return 0


def _percent(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.2g} %"


def render_cohorts(cohorts: list[Mapping[str, Any]]) -> str:
    rows = [
        [
            f"{c.get('model')} {c.get('version')}",
            c.get("backend") or "-",
            c.get("profile") or "-",
            c.get("devices"),
            c.get("requests"),
            c.get("errors"),
            _percent(c.get("error_percent")),
            _ms(c.get("p50_ms")),
            _ms(c.get("p95_ms")),
            _ms(c.get("worst_p95_ms")),
        ]
        for c in cohorts
    ]
    headers = ["model", "backend", "profile", "devices", "requests", "errors", "error rate"]
    return render([*headers, "p50", "p95", "worst p95"], rows)


def _cmd_cohorts(args: argparse.Namespace) -> int:
    with connect(args) as client:
        cohorts = client.cohorts(window=args.window, model=args.model, fleet=args.fleet)
    if args.json:
        print(json.dumps(cohorts, indent=2))
    elif not cohorts:
        print(f"no heartbeat figures in the last {args.window}")
    else:
        print(render_cohorts(cohorts))
    return 0


def add_commands(sub: SubParsers) -> None:
    """Register ``timeline`` and ``cohorts``."""
    timeline = sub.add_parser("timeline", help="what happened to a device, newest first")
    timeline.add_argument("device", metavar="DEVICE")
    timeline.add_argument("--kind", choices=KINDS, help="only entries of this kind")
    timeline.add_argument(
        "--limit", type=int, default=50, help="how many entries at most (default: 50)"
    )
    timeline.add_argument("--json", action="store_true", help="print the API objects")
    timeline.set_defaults(handler=_cmd_timeline)

    cohorts = sub.add_parser(
        "cohorts", help="latency and errors by model version x backend x hardware profile"
    )
    cohorts.add_argument(
        "--window", choices=WINDOWS, default="1h", help="how far back (default: 1h)"
    )
    cohorts.add_argument("--model", help="only this model's cohorts")
    cohorts.add_argument("--fleet", help="only this fleet's devices")
    cohorts.add_argument("--json", action="store_true", help="print the API objects")
    cohorts.set_defaults(handler=_cmd_cohorts)
