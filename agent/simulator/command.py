"""``edge-agent simulate``: what it starts (its options: ``agent.simulator.options``).

    edge-agent simulate --count N ...                 N full agents in this process
    edge-agent simulate --light --count N ...         N light devices in this process
    edge-agent simulate --light --count N --full M    M full agents (indices 0..M-1, in a
                                                      second process) and N light devices
                                                      (indices M..M+N-1, in this one)

Full agents load real runtimes and measure backends (``agent.simulator.fleet``); one
process holds at most ``capacity.MAX_FULL_AGENTS`` of them. Light devices run the agent's
wire code and fake only inference (``agent.simulator.light``); one process holds
thousands. A mixed fleet runs its full agents in a child process (this same command
without ``--light``), so their paho threads never see the light devices' descriptors;
the child is stopped with this process, and if it dies this process stops too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentConfigError
from agent.simulator.latency import SlowRule
from agent.simulator.options import API_TOKEN_ENV

logger = logging.getLogger(__name__)

#: How long a stopping mixed fleet waits for its full agents' process.
CHILD_STOP_S = 60.0


@dataclass(frozen=True)
class Simulation:
    """What ``serve`` runs: start, stop, and the ``STATUS=`` line."""

    start: Callable[[], None]
    stop: Callable[[], None]
    status: Callable[[], str]


def _check(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise AgentConfigError("--count must be at least 1")
    if args.first_index < 0:
        raise AgentConfigError("--first-index must not be negative")
    if args.traffic_hz is not None and not args.traffic_hz > 0:
        raise AgentConfigError("--traffic-hz must be above 0")
    if not args.heartbeat_interval > 0:
        raise AgentConfigError("--heartbeat-interval must be above 0")
    if not args.light and (args.full or args.private_downloads):
        raise AgentConfigError("--full and --private-downloads go with --light")
    if args.full < 0:
        raise AgentConfigError("--full must not be negative")
    if args.workers < 1:
        raise AgentConfigError("--workers must be at least 1")


def simulation(args: argparse.Namespace) -> Simulation:
    """The fleet ``args`` describe; AgentConfigError (one line) for bad options."""
    from agent.simulator.capacity import check_full_count
    from agent.simulator.enroll import api_enrollment
    from agent.simulator.latency import parse_slow_rule

    _check(args)
    try:
        rules = [parse_slow_rule(text) for text in args.slow]
    except ValueError as exc:
        raise AgentConfigError(f"--slow: {exc}") from exc
    enrollment = (
        api_enrollment(args.control_plane.rstrip("/"), args.api_token, args.fleet)
        if args.api_token
        else None
    )
    if not args.light:
        return _full(args, rules, enrollment)
    check_full_count(args.full)
    light = _light(args, rules, enrollment)
    if not args.full:
        return light
    return _mixed(args, light)


def _common(
    args: argparse.Namespace, rules: list[SlowRule], enrollment: Callable[[str], str] | None
) -> dict[str, Any]:
    """What full and light fleets take alike."""
    return {
        "count": args.count,
        "fleet": args.fleet,
        "broker_url": args.broker,
        "control_plane_url": args.control_plane,
        "data_dir": args.data_dir,
        "root_keys": args.root_keys,
        "trust_file": args.trust,
        "id_prefix": args.id_prefix,
        "heartbeat_interval_s": args.heartbeat_interval,
        "latency_ms": rules or None,
        "enrollment": enrollment,
    }


def _full(
    args: argparse.Namespace, rules: list[SlowRule], enrollment: Callable[[str], str] | None
) -> Simulation:
    from agent.simulator import SimulatedFleet

    fleet = SimulatedFleet(
        **_common(args, rules, enrollment),
        first_index=args.first_index,
        traffic_hz=args.traffic_hz,
        agent_config=(
            {"memory_budget_mb": args.memory_budget_mb}
            if args.memory_budget_mb is not None
            else None
        ),
    )
    status = f"{args.count} simulated agent(s) in fleet {args.fleet}"
    if args.traffic_hz:
        status += f", traffic {args.traffic_hz:g} Hz per model"
    return Simulation(fleet.start, fleet.stop, lambda: status)


def _light(
    args: argparse.Namespace, rules: list[SlowRule], enrollment: Callable[[str], str] | None
) -> Simulation:
    from agent.simulator.light import LightFleet
    from agent.simulator.light.fleet import DEFAULT_TRAFFIC_HZ

    fleet = LightFleet(
        **_common(args, rules, enrollment),
        first_index=args.first_index + args.full,
        traffic_hz=args.traffic_hz or DEFAULT_TRAFFIC_HZ,
        shared_cache=not args.private_downloads,
        workers=args.workers,
    )

    def status() -> str:
        return (
            f"{args.count} light simulated device(s) in fleet {args.fleet}, "
            f"{fleet.connected} connected"
        )

    return Simulation(fleet.start, fleet.stop, status)


def _mixed(args: argparse.Namespace, light: Simulation) -> Simulation:
    """``light`` here, and ``--full`` full agents in a child process."""
    child_args = _child_argv(args)
    holder: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def watch(child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        if not stopping.is_set():
            logger.error(
                "the process of the %d full agents exited with code %s; stopping", args.full, code
            )
            os.kill(os.getpid(), signal.SIGTERM)

    env = dict(os.environ)
    if args.api_token:
        env[API_TOKEN_ENV] = args.api_token  # not on its command line, where ps shows it

    def start() -> None:
        child = subprocess.Popen(child_args, env=env)  # its logs go to our stderr
        holder.append(child)
        threading.Thread(target=watch, args=(child,), name="full-agents", daemon=True).start()
        light.start()

    def stop() -> None:
        stopping.set()
        try:
            light.stop()
        finally:
            for child in holder:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
                    try:
                        child.wait(CHILD_STOP_S)
                    except subprocess.TimeoutExpired:
                        logger.warning("full agents did not stop in %ss; killing", CHILD_STOP_S)
                        child.kill()

    def status() -> str:
        alive = bool(holder) and holder[0].poll() is None
        return f"{light.status()}; {args.full} full agent(s) {'running' if alive else 'stopped'}"

    return Simulation(start, stop, status)


def _child_argv(args: argparse.Namespace) -> list[str]:
    """This command for the full agents of a mixed fleet (the API token via env)."""
    argv = [sys.executable, "-m", "agent.cli"]
    if args.verbose:
        argv.append("-v")
    argv += [
        "simulate",
        "--count", str(args.full),
        "--first-index", str(args.first_index),
        "--fleet", args.fleet,
        "--broker", args.broker,
        "--control-plane", args.control_plane,
        "--data-dir", args.data_dir,
        "--id-prefix", args.id_prefix,
        "--heartbeat-interval", str(args.heartbeat_interval),
    ]  # fmt: skip
    for key in args.root_keys:
        argv += ["--root-key", key]
    if args.trust:
        argv += ["--trust", args.trust]
    if args.traffic_hz:
        argv += ["--traffic-hz", str(args.traffic_hz)]
    for rule in args.slow:
        argv += ["--slow", rule]
    if args.memory_budget_mb is not None:
        argv += ["--memory-budget-mb", str(args.memory_budget_mb)]
    return argv
