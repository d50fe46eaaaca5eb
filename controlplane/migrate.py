"""Schema migrations (Alembic, ``controlplane/migrations/versions``).

``upgrade(engine)`` brings a database to the newest revision this code knows (``head``):
start-up runs it (``db.init_db``), as does ``edgefleet-controlplane migrate``. A database
made before migrations existed (no ``alembic_version`` table) starts at the baseline,
which is written to bring such a database to it. A database whose revision this code
does not know was migrated by a newer release: it is refused (``ConfigError``, one
line), never touched.

Replicas starting together on PostgreSQL migrate one at a time: each upgrade runs in one
transaction that first takes a transaction-level advisory lock, so the second waits for
the first to commit and then finds nothing to do. (SQLite: one process at a time.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from controlplane.errors import ConfigError

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key of schema upgrades ("EdgeFlt")
ADVISORY_LOCK = 0x45646765466C74


@dataclass(frozen=True)
class Migrated:
    """The revision a database was at (None: none, or made before migrations) and is at."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision this code knows."""
    found = _scripts().get_current_head()
    assert found is not None, "no migrations"
    return found


def current(connection: Connection) -> str | None:
    """The database's revision; None for an empty database or one made before
    migrations; ``ConfigError`` for a revision this code does not know."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is not None:
        try:
            _scripts().get_revision(revision)
        except CommandError:
            raise ConfigError(
                f"the database schema is at revision {revision!r}, which this control plane "
                f"does not know (its newest is {head()!r}): it was migrated by a newer "
                "release; run that release (or newer)"
            ) from None
    return revision


def upgrade(engine: Engine) -> Migrated:
    """Apply every revision the database lacks, in one transaction."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
        before = current(connection)
        if before != head():
            command.upgrade(_config(connection), "head")
    migrated = Migrated(before, head())
    if migrated.changed:
        logger.info("database schema upgraded from %s to %s", before or "(none)", migrated.after)
    return migrated


def status(engine: Engine) -> str | None:
    """The database's revision (read only); ``ConfigError`` as for ``current``."""
    with engine.connect() as connection:
        return current(connection)
