"""``edge-agent``: run the agent, simulate a fleet, or print the host's facts.

    edge-agent run --config agent.toml
    edge-agent simulate --count N --fleet F --broker URL --control-plane URL \\
        --data-dir DIR --root-key PATH [--root-key PATH ...] [--trust PATH] [--id-prefix sim]
    edge-agent probe [--json]

Bad input prints one line on stderr and exits 2 (never a traceback); a runtime failure
exits 1. Logs go to stderr with timestamps (``-v`` for debug).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from agent.errors import AgentConfigError, AgentError

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-agent", description="EdgeFleet edge agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", required=True, help="path to agent.toml")
    sim = sub.add_parser("simulate", help="run N simulated agents in this process")
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
    sim.add_argument("--heartbeat-interval", type=float, default=30.0)
    probe = sub.add_parser("probe", help="print this host's facts")
    probe.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # one line per blob request is noise at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(1.0):
        pass


def _serve(start: Callable[[], None], stop: Callable[[], None]) -> int:
    start()
    try:
        _wait_for_signal()
    finally:
        stop()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.agent import Agent
    from agent.config import load_config

    agent = Agent(load_config(args.config))
    return _serve(agent.start, agent.stop)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from agent.simulator import SimulatedFleet

    if args.count < 1:
        raise AgentConfigError("--count must be at least 1")
    fleet = SimulatedFleet(
        count=args.count,
        fleet=args.fleet,
        broker_url=args.broker,
        control_plane_url=args.control_plane,
        data_dir=args.data_dir,
        root_keys=args.root_keys,
        trust_file=args.trust,
        id_prefix=args.id_prefix,
        heartbeat_interval_s=args.heartbeat_interval,
    )
    return _serve(fleet.start, fleet.stop)


def _cmd_probe(args: argparse.Namespace) -> int:
    from hw_profiles import probe_host

    facts = probe_host().to_dict()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            text = " ".join(str(v) for v in value) or "-"
        else:
            text = str(value) if value not in ("", None) else "-"
        print(f"{key:<{width}}  {text}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    commands = {"run": _cmd_run, "simulate": _cmd_simulate, "probe": _cmd_probe}
    try:
        return commands[args.command](args)
    except AgentConfigError as exc:
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
