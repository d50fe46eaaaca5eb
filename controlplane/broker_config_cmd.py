"""``edgefleet-controlplane broker-config --out DIR``: write the production broker's
configuration (``controlplane.broker_config``), its revocation list read from the
control plane's database (``--database-url`` / ``--data-dir`` as for the server).

    edgefleet-controlplane broker-config --out /etc/mosquitto/edgefleet \\
        --device-ca-key /etc/edgefleet/device-ca.key --host broker.example.com \\
        [--port 8883] [--bind 0.0.0.0] [--identity _edgefleet-cp-1 ...] \\
        [--persistence /var/lib/mosquitto] [--broker-user mosquitto|UID[:GID]]
    edgefleet-controlplane broker-config --out /etc/mosquitto/edgefleet --crl-only

``--crl-only`` rewrites only ``crl.pem`` (after ``edgectl devices revoke``; then
``kill -HUP`` Mosquitto), leaving the server's and control plane's keys as they are.

One line on stderr and exit 2 for anything unusable.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from controlplane.broker_config import DEFAULT_IDENTITY, build, crl_only, write
from controlplane.db import init_db, make_engine
from controlplane.errors import ConfigError
from controlplane.identity.enrollment import revoked_serials
from controlplane.settings import ControlPlaneSettings
from model_store import ModelStoreError, load_private_key

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgefleet-controlplane broker-config",
        description="write Mosquitto's TLS + ACL configuration for an EdgeFleet fleet",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the files")
    p.add_argument("--device-ca-key", type=Path, help="(EDGEFLEET_DEVICE_CA_KEY)")
    p.add_argument(
        "--host",
        action="append",
        default=[],
        help="a name devices reach the broker by (repeatable; default 127.0.0.1, localhost)",
    )
    p.add_argument("--port", type=int, default=8883, help="the TLS listener's port")
    p.add_argument("--bind", default="0.0.0.0", help="the listener's address")
    p.add_argument(
        "--identity",
        action="append",
        default=[],
        help=f"a control-plane MQTT identity, one per replica (default {DEFAULT_IDENTITY})",
    )
    p.add_argument(
        "--broker-user",
        default="mosquitto",
        help="run as root: the user (name, UID or UID:GID) Mosquitto runs as, who must "
        "read server.key",
    )
    p.add_argument(
        "--persistence",
        type=Path,
        help="a directory where Mosquitto keeps retained messages and sessions across "
        "restarts (default: kept in memory only)",
    )
    p.add_argument(
        "--crl-only",
        action="store_true",
        help="rewrite only crl.pem (keys and certificates stay); then SIGHUP mosquitto",
    )
    p.add_argument("--data-dir", help="as for the server (EDGEFLEET_DATA_DIR)")
    p.add_argument("--database-url", help="as for the server (DATABASE_URL)")
    return p


def run(args: argparse.Namespace) -> list[str]:
    given = {"data_dir": args.data_dir, "database_url": args.database_url}
    settings = ControlPlaneSettings(**{k: v for k, v in given.items() if v is not None})
    key_path = args.device_ca_key or settings.device_ca_key
    if key_path is None:
        raise ConfigError("no device CA key: set --device-ca-key or EDGEFLEET_DEVICE_CA_KEY")
    try:
        ca_key = load_private_key(key_path)
    except (ModelStoreError, OSError) as exc:
        raise ConfigError(f"cannot load device CA key: {exc}") from exc
    identities = args.identity or [DEFAULT_IDENTITY]
    for identity in identities:
        if not identity.startswith("_") or not 2 <= len(identity) <= 64 or "/" in identity:
            raise ConfigError(f"--identity {identity!r}: must start with '_' (at most 64)")
    if args.persistence is not None and not args.persistence.is_absolute():
        raise ConfigError(f"--persistence {args.persistence}: must be an absolute path")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: not a TCP port")
    engine = make_engine(settings.db_url)
    try:
        init_db(engine)
        with Session(engine) as session:
            revoked = revoked_serials(session)
    finally:
        engine.dispose()
    if args.crl_only:
        if not (args.out / "mosquitto.conf").is_file():
            raise ConfigError(f"--crl-only: {args.out} holds no configuration to refresh")
        config = crl_only(ca_key, revoked, now=datetime.now(UTC))
    else:
        config = build(
            ca_key,
            args.out,
            hosts=args.host or ["127.0.0.1", "localhost"],
            port=args.port,
            bind=args.bind,
            identities=identities,
            revoked=revoked,
            now=datetime.now(UTC),
            persistence=args.persistence,
        )
    try:
        write(config, args.out, broker_user=args.broker_user)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    return sorted(config.files)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        names = run(args)
    except ConfigError as exc:
        print(f"edgefleet-controlplane broker-config: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"wrote {', '.join(names)} to {args.out}")
    if args.crl_only:
        print("reload: kill -HUP $(pidof mosquitto)")
    else:
        print(f"run: mosquitto -c {args.out.resolve() / 'mosquitto.conf'}")
    return 0
