"""Engine creation and schema creation at start-up (``create_all``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from controlplane import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from controlplane.errors import ConfigError
from controlplane.settings import mask_url

logger = logging.getLogger(__name__)


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
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
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
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            f"cannot use database {mask_url(engine.url.render_as_string(hide_password=True))}: "
            f"{reason[0] if reason else exc.__class__.__name__}"
        ) from exc
