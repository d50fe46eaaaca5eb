"""PostgreSQL's fast path for many rows: ``COPY ... FROM STDIN`` (psycopg 3).

Ingestion writes hundreds of rows per transaction; sent as ``COPY`` they cost one round
trip and little Python per row (psycopg adapts them in C), where an INSERT or UPDATE
executemany pays for each row's statement. ``copy_rows`` appends rows to a table;
``staged`` gives a temporary table (one per connection, emptied at each commit) that a
batch is copied into and then joined by one UPDATE.

Only for a SQLAlchemy connection on PostgreSQL through psycopg (``fast``); callers keep
a portable path for the others (SQLite). A failure of ``COPY`` is raised as SQLAlchemy's
``DBAPIError`` (``OperationalError``, ``IntegrityError``, ...), as every other statement's
is, so the ingester's handling of database errors (roll back, apply one by one) holds,
and a connection that broke is invalidated, not handed back to the pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def fast(connection: Connection) -> bool:
    """Whether ``connection`` is PostgreSQL through psycopg 3 (``COPY`` is available)."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append ``rows`` (values in ``columns`` order) to ``table`` in the connection's
    transaction."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    raw: Any = connection.connection.driver_connection
    with (
        _as_sqlalchemy(connection, statement),
        raw.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)


@contextmanager
def _as_sqlalchemy(connection: Connection, statement: str) -> Iterator[None]:
    """psycopg's errors raised as SQLAlchemy's, the connection invalidated if it broke."""
    try:
        yield
    except psycopg.Error as exc:
        broken = bool(connection.connection.driver_connection.broken)  # type: ignore[union-attr]
        if broken:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=broken
        ) from exc


def staged(connection: Connection, name: str, columns: str) -> str:
    """The name of a temporary table ``name`` with ``columns`` (SQL) on this connection,
    created if it is not there (each time: a transaction that created it and rolled
    back took it away); its rows are deleted at every commit."""
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"
    )
    return name
