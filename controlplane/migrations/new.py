"""Write the next revision for a schema change: ``make migration m="what changed"``.

    python -m controlplane.migrations.new "add device.site"

Compares the models (``SQLModel.metadata``) with a scratch SQLite database at the newest
revision and writes ``versions/NNNN_<slug>.py`` with what differs (Alembic's
autogenerate). Read it before committing it: rename detection, data moves and
PostgreSQL-only details are yours to write; ``tests/integration/test_migrations.py``
checks the models then match on both databases.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from controlplane.db import make_engine
from controlplane.migrate import _config, head, upgrade


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        print('usage: python -m controlplane.migrations.new "what changed"', file=sys.stderr)
        return 2
    message = argv[0].strip()
    number = f"{int(head()) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            upgrade(engine)
            with engine.begin() as connection:  # Alembic names the file NNNN_<slug>.py
                command.revision(
                    _config(connection),
                    message=message,
                    autogenerate=True,
                    rev_id=number,
                )
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
