"""``edgefleet-controlplane migrate``: bring the database's schema to this release's newest
revision (start-up does the same), or with ``--status`` only say where it stands.

    edgefleet-controlplane migrate [--database-url URL | --data-dir DIR] [--status]

Prints one line: the database (password masked), its revision before and after.
``--status`` changes nothing; it exits 0 when the database is at this release's newest
revision and 1 when it is behind (start-up would migrate it). A database this release
cannot use (unreachable, or migrated by a newer release) is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from controlplane.db import init_db, make_engine, schema_revision
from controlplane.errors import ConfigError
from controlplane.migrate import head
from controlplane.settings import load_settings, mask_url

EXIT_CONFIG = 2
PROG = "edgefleet-controlplane migrate"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Bring the database's schema to this release's newest revision "
        "(start-up does the same), or with --status only say where it stands.",
    )
    p.add_argument("--data-dir", help="as for the server (EDGEFLEET_DATA_DIR)")
    p.add_argument("--database-url", help="as for the server (DATABASE_URL)")
    p.add_argument(
        "--status", action="store_true", help="change nothing: say where the schema stands"
    )
    return p


def _database_url(args: argparse.Namespace) -> str:
    return load_settings(data_dir=args.data_dir, database_url=args.database_url).db_url


def run(args: argparse.Namespace) -> tuple[str, int]:
    url = _database_url(args)
    engine = make_engine(url)
    where = mask_url(url)
    try:
        if args.status:
            revision, newest = schema_revision(engine), head()
            if revision == newest:
                return f"{where}: at {revision} (this release's newest)", 0
            return f"{where}: at {revision or '(none)'}; this release's newest is {newest}", 1
        migrated = init_db(engine)
    finally:
        engine.dispose()
    if migrated.changed:
        return f"{where}: migrated from {migrated.before or '(none)'} to {migrated.after}", 0
    return f"{where}: already at {migrated.after} (this release's newest)", 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        line, code = run(args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(line)
    return code
