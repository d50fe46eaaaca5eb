"""``edgectl models undeploy NAME --fleet F``: remove a model from a fleet's devices on
purpose, as a rollout (batch by batch, watched like a push; no health gate)."""

from __future__ import annotations

import argparse
from typing import Any

from edgectl.connect import connect
from edgectl.durations import parse_duration
from edgectl.rollout_cmds import add_watch_options, watch, watch_timeout
from edgectl.values import parse_canary, parse_percent, parse_positive_int, parse_selector


def _strategy(args: argparse.Namespace) -> dict[str, Any]:
    """The undeploy's strategy (only the keys given; the control plane fills the rest)."""
    strategy: dict[str, Any] = {}
    if args.canary is not None:
        strategy.update(parse_canary(args.canary))
    if args.batches is not None:
        strategy["batches"] = parse_positive_int(args.batches, what="--batches")
    if args.wait is not None:
        strategy["wait_s"] = parse_duration(args.wait, what="--wait")
    if args.max_failures is not None:
        strategy["max_failures_pct"] = parse_percent(args.max_failures, what="--max-failures")
    return strategy


def _cmd_undeploy(args: argparse.Namespace) -> int:
    selector = parse_selector(args.selector) if args.selector else None
    strategy = _strategy(args)
    timeout = watch_timeout(args)
    with connect(args) as client:
        rollout = client.undeploy(args.name, args.fleet, selector=selector, strategy=strategy)
        return watch(client, rollout, as_json=args.json, detach=args.detach, timeout=timeout)


def add_undeploy(cmds: Any) -> None:
    """Register ``models undeploy`` on the ``models`` sub-commands."""
    undeploy = cmds.add_parser(
        "undeploy",
        help="remove a model from a fleet's devices, as a rollout (the others serve on)",
    )
    undeploy.add_argument("name", metavar="NAME")
    undeploy.add_argument("--fleet", required=True, help="the fleet to remove it from")
    undeploy.add_argument(
        "--selector", metavar="K=V,...", help="only the fleet's devices with these labels"
    )
    undeploy.add_argument(
        "--canary", metavar="N|P%", help="first a canary batch of N devices or P%% of them"
    )
    undeploy.add_argument("--batches", metavar="K", help="then the rest in K batches (default 1)")
    undeploy.add_argument("--wait", metavar="DURATION", help="wait between batches, e.g. 5m")
    undeploy.add_argument(
        "--max-failures", metavar="P%", help="abort when more than P%% of the finished failed"
    )
    add_watch_options(undeploy)
    undeploy.set_defaults(handler=_cmd_undeploy)
