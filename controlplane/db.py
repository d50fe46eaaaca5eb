"""Engine creation and schema creation at start-up (``create_all``).

SQLite and PostgreSQL only. ``init_db`` creates missing tables and widens the generation
columns of a PostgreSQL database created before they were BIGINT (the one schema
change so far; there are no migrations yet).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from controlplane import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from controlplane.errors import ConfigError
from controlplane.settings import mask_url

logger = logging.getLogger(__name__)

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
#: Columns that hold generations: BIGINT (signed 64-bit, ``protocol.MAX_GENERATION``).
GENERATION_COLUMNS = (
    ("device", "generation"),
    ("device", "reported_generation"),
    ("deploymenttarget", "generation"),
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
