"""Engine creation, and the schema at start-up: ``init_db`` applies the migrations
(``controlplane.migrate``) and turns a database that cannot be used into one line.

SQLite and PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import create_engine

from controlplane import history as _history  # noqa: F401  (the same)
from controlplane import leases as _leases  # noqa: F401  (the same)
from controlplane import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from controlplane import timeline as _timeline  # noqa: F401  (the same)
from controlplane.alerts import tables as _alert_tables  # noqa: F401  (the same)
from controlplane.audit import table as _audit_table  # noqa: F401  (the same)
from controlplane.errors import ConfigError
from controlplane.identity import tables as _identity_tables  # noqa: F401  (the same)
from controlplane.migrate import Migrated, status, upgrade
from controlplane.settings import mask_url

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


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
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
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
    except (ArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(f"unusable DATABASE_URL {mask_url(url)!r}: {exc}") from exc


def init_db(engine: Engine) -> Migrated:
    """Migrate the schema to this code's newest revision; ConfigError (one line) if the
    database cannot be reached, or was migrated by a newer release."""
    with _one_line(engine):
        return upgrade(engine)


def schema_revision(engine: Engine) -> str | None:
    """The schema's revision, read only (None: empty, or made before migrations);
    ConfigError as for ``init_db``."""
    with _one_line(engine):
        return status(engine)


@contextmanager
def _one_line(engine: Engine) -> Iterator[None]:
    """A database error as a one-line ConfigError naming the database (password masked)."""
    try:
        yield
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            f"cannot use database {mask_url(engine.url.render_as_string(hide_password=True))}: "
            f"{reason[0] if reason else exc.__class__.__name__}"
        ) from exc
