"""Schema migrations (Alembic, ``controlplane/migrations/versions``).

``upgrade(engine)`` brings a database to the newest revision this code knows (``head``):
start-up runs it (``db.init_db``), as does ``edgefleet-controlplane migrate``. A database
made before migrations existed (no ``alembic_version`` table) starts at the baseline,
which is written to bring such a database to it. A database whose revision this code
does not know was migrated by a newer release: it is refused (``ConfigError``, one
line), never touched.

Each upgrade runs in one transaction (on SQLite too: see ``_upgrade_sqlite``). Replicas
starting together on PostgreSQL migrate one at a time: the transaction first takes a
transaction-level advisory lock, so the second waits for the first to commit and then
finds nothing to do. (SQLite: one process; ``BEGIN IMMEDIATE`` serialises writers.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

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
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            before = _upgrade_sqlite(connection)
        else:
            with connection.begin():
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": ADVISORY_LOCK})
                before = _apply(connection)
    migrated = Migrated(before, head())
    if migrated.changed:
        logger.info("database schema upgraded from %s to %s", before or "(none)", migrated.after)
    return migrated


def _apply(connection: Connection) -> str | None:
    """Upgrade to head inside the caller's transaction; the revision it was at."""
    before = current(connection)
    if before != head():
        command.upgrade(_config(connection), "head")
    return before


def _upgrade_sqlite(connection: Connection) -> str | None:
    """SQLite: Python's driver commits DDL as it goes and our engine enforces foreign
    keys, which a table Alembic rebuilds (batch mode: copy, drop, rename) would trip.
    So the driver leaves the transaction to us (one ``BEGIN IMMEDIATE`` ... ``COMMIT``
    around every revision: a failed upgrade changes nothing), foreign keys are off
    meanwhile, and ``PRAGMA foreign_key_check`` must find nothing before the commit."""
    dbapi: Any = connection.connection.dbapi_connection
    saved = dbapi.isolation_level
    dbapi.isolation_level = None
    try:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no-op inside a transaction
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            before = _apply(connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise ConfigError(
                    f"the migration would leave {len(broken)} row(s) whose foreign key "
                    f"points nowhere (first in table {broken[0][0]!r}); nothing was changed"
                )
            connection.exec_driver_sql("COMMIT")
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        dbapi.isolation_level = saved
    return before


def status(engine: Engine) -> str | None:
    """The database's revision (read only); ``ConfigError`` as for ``current``."""
    with engine.connect() as connection:
        return current(connection)
