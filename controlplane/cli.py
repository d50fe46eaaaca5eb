"""``edgefleet-controlplane``: run the control plane (uvicorn), optionally with its own broker.

``edgefleet-controlplane broker-config --out DIR`` writes the production broker's
configuration instead (``controlplane.broker_config_cmd``); ``edgefleet-controlplane
migrate`` brings the database's schema to this release (``controlplane.migrate_cmd``;
start-up does the same).

Flags override the environment (see :mod:`controlplane.settings`). A configuration that
cannot work (unreadable key, a trust document that does not verify from the pinned root
keys or has expired, a signing key it does not certify, unreachable database, port in
use) is reported in one line on stderr with exit status 2. A broker that is down is not
a configuration error: the MQTT bridge keeps retrying while the API serves.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any, NoReturn

import uvicorn

from controlplane.app import create_app
from controlplane.broker import EmbeddedBroker
from controlplane.errors import ConfigError
from controlplane.log_format import FORMATS, formatter
from controlplane.settings import ControlPlaneSettings, load_settings

logger = logging.getLogger("controlplane")

EXIT_CONFIG = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``prog: error: ...``), exit status 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see --help)\n")


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (pick a free one) to 65535."""
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="edgefleet-controlplane",
        description="EdgeFleet control plane: HTTP API + MQTT publisher/ingester.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=port_number, default=8080, help="HTTP port (default %(default)s)")
    p.add_argument("--data-dir", help="data directory (EDGEFLEET_DATA_DIR)")
    p.add_argument("--database-url", help="sqlite:///… or postgresql://… (DATABASE_URL)")
    p.add_argument("--mqtt-url", help="mqtt://[user:pass@]host:port (MQTT_URL)")
    p.add_argument(
        "--root-keys",
        help="comma-separated pinned root public keys or directories of *.pub "
        "(EDGEFLEET_ROOT_KEYS)",
    )
    p.add_argument(
        "--trust",
        help="root-signed trust document stored when the database has none (EDGEFLEET_TRUST)",
    )
    p.add_argument(
        "--control-plane-key",
        help="private key that signs deployment commands (EDGEFLEET_CONTROL_PLANE_KEY)",
    )
    p.add_argument(
        "--device-ca-key",
        help="private key of the device CA that issues device certificates "
        "(EDGEFLEET_DEVICE_CA_KEY; without it no device can enroll)",
    )
    p.add_argument(
        "--embedded-broker",
        action="store_true",
        help="also run an MQTT 3.1.1 broker (amqtt) on 127.0.0.1 and connect to it",
    )
    p.add_argument(
        "--broker-port",
        type=port_number,
        default=1883,
        help="embedded broker port (default %(default)s)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get("EDGEFLEET_LOG_FORMAT", "text"),
        help="text lines, or one JSON object per line (EDGEFLEET_LOG_FORMAT; default text)",
    )
    return p


def _bind(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket now, so 'port in use' is a clean configuration error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _settings(
    args: argparse.Namespace, broker: EmbeddedBroker | None, http_port: int
) -> ControlPlaneSettings:
    given: dict[str, Any] = {
        "http_port": http_port,
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "mqtt_url": broker.url if broker is not None else args.mqtt_url,
        "root_keys": args.root_keys,
        "trust": args.trust,
        "control_plane_key": args.control_plane_key,
        "device_ca_key": args.device_ca_key,
    }
    return load_settings(**given)


def _exit_on_sigterm(_sig: int, _frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully;
    # turning it into SystemExit lets the embedded broker stop too, with status 0.
    raise SystemExit(0)


def _hold_logs(level: str, kind: str = "text") -> logging.handlers.MemoryHandler:
    """Log to stderr (as ``kind``: text or json), but hold start-up lines back until the
    configuration is known to work: a refused start-up then prints exactly one line (see
    :func:`_release_logs`)."""
    stream = logging.StreamHandler()
    stream.setFormatter(formatter(kind))
    held = logging.handlers.MemoryHandler(
        capacity=100_000, flushLevel=logging.CRITICAL + 1, target=stream, flushOnClose=False
    )
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.addHandler(held)
    return held


def _release_logs(held: logging.handlers.MemoryHandler, *, emit: bool) -> None:
    """Stop holding: write the held lines (``emit``) or drop them, then log directly."""
    root = logging.getLogger()
    root.removeHandler(held)
    target = held.target
    if emit:
        held.flush()
    held.setTarget(None)
    held.close()
    if target is not None:
        root.addHandler(target)


#: Allocations between two collections of the youngest generation (CPython's default:
#: 700). Ingesting a batch allocates hundreds of thousands of short-lived objects; at the
#: default the collector ran every few hundred of them and took ~15 % of the ingest worker.
GC_THRESHOLD_0 = 50_000


def settle_garbage_collector() -> None:
    """Move what start-up allocated (modules, the app) out of the collector's way
    (``gc.freeze``: full collections no longer walk it) and collect the young generation
    less often. Cycles are still collected; they live a little longer."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD_0, older, oldest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["broker-config"]:
        from controlplane.broker_config_cmd import main as broker_config

        return broker_config(argv[1:])
    if argv[:1] == ["migrate"]:
        from controlplane.migrate_cmd import main as migrate

        return migrate(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.log_format not in FORMATS:  # from the environment: argparse checks only flags
        parser.error(f"EDGEFLEET_LOG_FORMAT={args.log_format!r}: use one of {', '.join(FORMATS)}")
    held = _hold_logs(args.log_level, args.log_format)
    broker: EmbeddedBroker | None = None
    sock: socket.socket | None = None
    try:
        sock = _bind(args.host, args.port)
        if args.embedded_broker:
            broker = EmbeddedBroker("127.0.0.1", args.broker_port)
            broker.start()
        port = sock.getsockname()[1]  # the real one, also for --port 0
        app = create_app(_settings(args, broker, port))
    except ConfigError as exc:
        if sock is not None:
            sock.close()
        if broker is not None:
            broker.stop()
        _release_logs(held, emit=False)
        print(f"edgefleet-controlplane: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _release_logs(held, emit=True)
    settle_garbage_collector()
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level=args.log_level, lifespan="on")
    )
    logger.info("control plane serving on http://%s:%s (OpenAPI at /docs)", args.host, port)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if broker is not None:
            broker.stop()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
