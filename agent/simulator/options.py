"""``edge-agent simulate``'s options (what it starts is ``agent.simulator.command``).

A module of its own because ``edge-agent``'s parser adds these options in every process,
``edge-agent run`` included: it imports only ``argparse`` and ``os``, so a running agent
does not load the simulator (a process cannot unload a module).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

API_TOKEN_ENV = "EDGEFLEET_API_TOKEN"


def add_simulate_parser(sub: argparse._SubParsersAction[Any]) -> None:
    sim = sub.add_parser("simulate", help="run N simulated devices in this process")
    sim.add_argument("--count", type=int, required=True)
    sim.add_argument("--fleet", required=True)
    sim.add_argument("--broker", required=True, help="mqtt://host:port")
    sim.add_argument("--control-plane", required=True, help="http://host:port")
    sim.add_argument("--data-dir", required=True)
    sim.add_argument(
        "--root-key", action="append", required=True, dest="root_keys", help="pinned root key"
    )
    sim.add_argument("--trust", help="initial signed trust document (provisioning)")
    sim.add_argument("--id-prefix", default="sim")
    sim.add_argument(
        "--first-index", type=int, default=0, help="number devices from this index (default 0)"
    )
    sim.add_argument(
        "--api-token",
        default=os.environ.get(API_TOKEN_ENV),
        help="an operator API token: enroll devices that are not enrolled yet "
        f"(or env {API_TOKEN_ENV})",
    )
    sim.add_argument("--heartbeat-interval", type=float, default=30.0)
    sim.add_argument(
        "--traffic-hz",
        type=float,
        help="per device, this many inferences per second on each active model (light "
        "devices: synthetic figures, default 5)",
    )
    sim.add_argument(
        "--slow",
        action="append",
        default=[],
        metavar="MODEL[:VERSION]=DURATION[@DEVICES]",
        help="extra inference latency, e.g. det:2.0.0=40ms@every-3rd (repeatable)",
    )
    sim.add_argument(
        "--memory-budget-mb",
        type=int,
        help="full agents: the memory each device's models may take in all, MiB (default: "
        "three quarters of its simulated RAM)",
    )
    sim.add_argument(
        "--light",
        action="store_true",
        help="light devices: the agent's wire code on one event loop, inference faked",
    )
    sim.add_argument(
        "--full",
        type=int,
        default=0,
        metavar="M",
        help="with --light: also M full agents (indices first..first+M-1, in a second process)",
    )
    sim.add_argument(
        "--private-downloads",
        action="store_true",
        help="with --light: every device installs its own copy of each bundle (default: "
        "each downloads and checks every file, one verified copy per process)",
    )
    sim.add_argument(
        "--workers",
        type=int,
        default=8,
        help="with --light: threads for downloads, verification and enrollment (default 8)",
    )
