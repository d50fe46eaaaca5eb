"""``edge-agent``: run the agent, simulate a fleet, or print the host's facts.

    edge-agent run --config agent.toml
    edge-agent enroll --config agent.toml --token TOKEN [--force]
    edge-agent simulate --count N --fleet F --broker URL --control-plane URL \\
        --data-dir DIR --root-key PATH [--root-key PATH ...] [--trust PATH] [--id-prefix sim]
        [--traffic-hz N] [--slow MODEL[:VERSION]=DURATION[@DEVICES] ...]
        [--light [--full M] [--private-downloads]]   (agent.simulator.options, .command)
    edge-agent probe [--json]

Bad input prints one line on stderr and exits 2 (never a traceback); a runtime failure
exits 1. Logs go to stderr with timestamps (``-v`` for debug); when stderr is systemd's
journal stream (``$JOURNAL_STREAM``) each line starts with its syslog priority instead
(``<4>`` for a warning, sd-daemon(3)), so ``journalctl -p warning`` finds it.

``run`` and ``simulate`` share one serve loop: SIGTERM/SIGINT handlers first (a signal
during start-up is kept), start, ``READY=1``, wait for the signal (the main loop beats
every second for the watchdog), ``STOPPING=1``, stop (the agent drains its local API
first and publishes offline last), exit 0. systemd integration is ``agent.sdnotify``;
``agent_checks`` / ``agent_status`` say what the watchdog requires of an agent and
what ``STATUS=`` shows (docs/agent.md, "Running under systemd").
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from agent.errors import AgentConfigError, AgentError
from agent.logsetup import setup_logging
from agent.sdnotify import HealthCheck, Notifier, Supervisor, watchdog_interval
from agent.simulator.options import add_simulate_parser

if TYPE_CHECKING:
    from agent.agent import Agent

logger = logging.getLogger(__name__)

TOKEN_ENV = "EDGEFLEET_ENROLLMENT_TOKEN"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-agent", description="EdgeFleet edge agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", required=True, help="path to agent.toml")
    enroll = sub.add_parser("enroll", help="enroll this device with a one-time token")
    enroll.add_argument("--config", required=True, help="path to agent.toml")
    enroll.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"the token from `edgectl devices enroll` (or env {TOKEN_ENV})",
    )
    enroll.add_argument("--force", action="store_true", help="enroll again with a new key")
    add_simulate_parser(sub)
    probe = sub.add_parser("probe", help="print this host's facts")
    probe.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def agent_checks(agent: Agent, probe_timeout_s: float = 5.0) -> list[HealthCheck]:
    """What the watchdog requires of a running agent (see ``agent.sdnotify``)."""

    def deployment_worker() -> str | None:
        return None if agent.worker_alive else "the deployment worker thread has stopped"

    def local_api() -> str | None:
        # any answer proves the server accepts and serves; a 503 for too many
        # connections is load, not a wedge, and must not get the agent killed.
        # (http.client, not httpx: the agent does not load httpx only for this)
        url = f"{agent.local_api_url}/v2/health/live"
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=probe_timeout_s
        )
        try:
            connection.request("GET", parts.path)
            connection.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            return f"local API {url} does not answer: {str(exc) or type(exc).__name__}"
        finally:
            connection.close()
        return None

    return [deployment_worker, local_api]


def agent_status(agent: Agent) -> str:
    """One ``STATUS=`` line: what is served, where, and whether the broker is reachable."""
    models = ", ".join(f"{m.name} {m.version} ({m.backend})" for m in agent.active)
    parts = [
        f"serving {models}" if models else "no model active",
        f"API {agent.local_api_url}"
        + (f" (gRPC {agent.local_grpc_address})" if agent.local_grpc_address else ""),
        "broker connected" if agent.connected else "broker not connected (retrying)",
        f"generation {max(agent.generation, 0)}",
    ]
    if agent.last_error:
        parts.append(f"last error: {agent.last_error[:120]}")
    return "; ".join(parts)


def _stop_requested() -> threading.Event:
    """Install SIGTERM/SIGINT handlers that set the returned event (before start, so a
    signal during start-up still ends in a clean stop)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.info("received %s again; already stopping", name)
        else:
            logger.info("received %s, stopping", name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _wait_for_signal(stop: threading.Event, beat: Callable[[], None]) -> None:
    """The main loop: wakes every second to tell the supervisor it is not wedged."""
    beat()
    while not stop.wait(1.0):
        beat()


def _serve(start: Callable[[], None], stop: Callable[[], None], supervisor: Supervisor) -> int:
    """start -> READY=1 -> wait for SIGTERM/SIGINT -> STOPPING=1 -> stop -> exit 0."""
    requested = _stop_requested()
    start()
    try:
        supervisor.ready()
        _wait_for_signal(requested, supervisor.beat)
    finally:
        supervisor.stopping()
        try:
            stop()
        finally:
            supervisor.close()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from hw_profiles.runtime_cache import FILENAME
    from hw_profiles.runtimes import start_probe

    config = load_config(args.config)
    # the runtimes are probed in a child (kept in the data dir): it runs while we import
    start_probe(config.data_dir / FILENAME)
    from agent.agent import Agent

    agent = Agent(config)
    # the liveness probe must fail well within one ping interval (half the watchdog's)
    watchdog_s = watchdog_interval()
    probe_s = max(0.5, min(5.0, watchdog_s / 4)) if watchdog_s else 5.0
    supervisor = Supervisor(
        Notifier.from_env(),
        watchdog_s=watchdog_s,
        checks=agent_checks(agent, probe_s),
        status=lambda: agent_status(agent),
    )
    return _serve(agent.start, agent.stop, supervisor)


def _cmd_enroll(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.enrollment import enroll_device

    if not args.token:
        raise AgentConfigError(f"--token (or {TOKEN_ENV}) is required")
    config = load_config(args.config)
    identity = enroll_device(config, args.token, force=args.force)
    print(
        f"enrolled {config.device_id}: certificate valid until "
        f"{identity.not_after:%Y-%m-%d %H:%M}Z ({identity.directory})"
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from agent.simulator.command import simulation

    sim = simulation(args)
    supervisor = Supervisor(Notifier.from_env(), watchdog_s=watchdog_interval(), status=sim.status)
    return _serve(sim.start, sim.stop, supervisor)


def _cmd_probe(args: argparse.Namespace) -> int:
    from hw_profiles import ProfileError, format_table, probe_host, probe_report

    try:  # the facts, the matched profile and its eligible candidates
        report = probe_report(probe_host())
    except ProfileError as exc:  # a broken packaged catalogue: one line, no traceback
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    commands = {
        "run": _cmd_run,
        "enroll": _cmd_enroll,
        "simulate": _cmd_simulate,
        "probe": _cmd_probe,
    }
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
