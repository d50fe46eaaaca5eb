"""``edgectl models undeploy NAME --fleet F``: remove a model from a fleet's devices on
purpose, as a rollout (batch by batch, watched like a push; no health gate)."""

from __future__ import annotations

import argparse
from typing import Any

from edgectl.connect import connect
from edgectl.push_cmds import GATE_OPTIONS, add_batch_options, strategy_of
from edgectl.rollout_cmds import add_watch_options, watch, watch_timeout
from edgectl.values import parse_selector


def _cmd_undeploy(args: argparse.Namespace) -> int:
    selector = parse_selector(args.selector) if args.selector else None
    strategy = strategy_of(args)
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
    add_batch_options(undeploy)
    undeploy.add_argument(
        "--install-timeout",
        metavar="DURATION",
        help="a device still holding the model this long after its batch started failed",
    )
    add_watch_options(undeploy)
    # no health gate for an undeploy (nothing left to measure): the rollout options only
    undeploy.set_defaults(
        handler=_cmd_undeploy,
        min_finished=None,
        no_gate=False,
        **dict.fromkeys(GATE_OPTIONS),
    )
