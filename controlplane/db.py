"""Engine creation and schema creation at start-up (``create_all``).

SQLite and PostgreSQL only. There are no migrations yet; ``init_db`` creates missing
tables, then applies the schema changes made since, each idempotent:

* generation columns of a PostgreSQL database created while they were INTEGER are
  widened to BIGINT;
* columns added to an existing table (``ADDED_COLUMNS``: backend pins, selection
  reports) are added where missing, with their type compiled from the model for the
  database at hand (``ADD COLUMN IF NOT EXISTS`` on PostgreSQL, so replicas starting
  together do not trip over each other; SQLite re-checks after a failed ALTER).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from controlplane import history as _history  # noqa: F401  (the same)
from controlplane import leases as _leases  # noqa: F401  (the same)
from controlplane import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from controlplane.errors import ConfigError
from controlplane.identity import tables as _identity_tables  # noqa: F401  (the same)
from controlplane.settings import mask_url

logger = logging.getLogger(__name__)

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
#: Columns that hold generations: BIGINT (signed 64-bit, ``protocol.MAX_GENERATION``).
GENERATION_COLUMNS = (
    ("device", "generation"),
    ("device", "reported_generation"),
    ("deploymenttarget", "generation"),
)
#: Columns added after their table first shipped: (table, column, default for old rows).
#: A default makes the column NOT NULL (old rows get it); None leaves it nullable.
ADDED_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("fleet", "pinned_backend", None),
    ("device", "pinned_backend", None),
    ("device", "selections", "'{}'"),
    ("devicecommand", "backend", None),
    ("device", "labels", "'{}'"),
    ("device", "profile", None),
    ("device", "runtimes", "'[]'"),
    ("deployment", "rollout_id", None),
    ("device", "key_id", None),
    ("device", "report_windows", "'{}'"),
    ("deviceidentity", "report_key", None),
    ("rolloutdevice", "judged_at", None),
    ("rolloutdevice", "target_model_version_id", None),
    ("deployment", "remove", "false"),
    ("rollout", "remove", "false"),
    ("deployment", "priority", None),
    ("rollout", "priority", None),
    ("device", "models", "'[]'"),
    ("device", "memory", None),
    ("fleet", "model_pins", "'{}'"),
    ("device", "model_pins", "'{}'"),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite: thread-shareable, WAL, foreign keys on)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid DATABASE_URL {mask_url(url)!r}") from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"unsupported DATABASE_URL scheme {parsed.drivername!r}: "
            "use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            directory = Path(parsed.database).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create database directory {directory}: {exc.strerror or exc}"
                ) from exc
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"unusable DATABASE_URL {mask_url(url)!r}: {exc}") from exc


def init_db(engine: Engine) -> None:
    """Create missing tables; ConfigError (one line) if the database cannot be reached."""
    try:
        SQLModel.metadata.create_all(engine)
        _widen_generations(engine)
        _add_missing_columns(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            f"cannot use database {mask_url(engine.url.render_as_string(hide_password=True))}: "
            f"{reason[0] if reason else exc.__class__.__name__}"
        ) from exc


def _widen_generations(engine: Engine) -> None:
    """ALTER generation columns still INTEGER (int4) on PostgreSQL to BIGINT.

    SQLite's INTEGER is already 64-bit; nothing to do there.
    """
    if engine.dialect.name != "postgresql":
        return
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table, column in GENERATION_COLUMNS:
            kinds = {c["name"]: c["type"] for c in inspector.get_columns(table)}
            kind = kinds.get(column)
            if isinstance(kind, Integer) and not isinstance(kind, BigInteger):
                logger.warning("widening %s.%s from %s to BIGINT", table, column, kind)
                conn.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE BIGINT'))


def _add_missing_columns(engine: Engine) -> None:
    """Add the ``ADDED_COLUMNS`` an older database lacks (logged as a warning)."""
    for table, column, default in ADDED_COLUMNS:
        if column in {c["name"] for c in inspect(engine).get_columns(table)}:
            continue
        kind = SQLModel.metadata.tables[table].c[column].type.compile(dialect=engine.dialect)
        tail = f" NOT NULL DEFAULT {default}" if default is not None else ""
        guard = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
        logger.warning("adding column %s.%s (%s) to an older database", table, column, kind)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(f'ALTER TABLE "{table}" ADD COLUMN{guard} "{column}" {kind}{tail}')
                )
        except OperationalError:
            # SQLite has no IF NOT EXISTS here: another process may just have added it
            if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                raise
