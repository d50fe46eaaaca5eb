"""PostgreSQL's fast path for many rows: ``COPY ... FROM STDIN`` (psycopg 3).

Ingestion writes hundreds of rows per transaction; sent as ``COPY`` they cost one round
trip and little Python per row (psycopg adapts them in C), where an INSERT or UPDATE
executemany pays for each row's statement. ``copy_rows`` appends rows to a table;
``staged`` gives a temporary table (one per connection, emptied at each commit) that a
batch is copied into and then joined by one UPDATE.

Only for a SQLAlchemy connection on PostgreSQL through psycopg (``fast``); callers keep
a portable path for the others (SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection


def fast(connection: Connection) -> bool:
    """Whether ``connection`` is PostgreSQL through psycopg 3 (``COPY`` is available)."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Append ``rows`` (values in ``columns`` order) to ``table`` in the connection's
    transaction."""
    raw: Any = connection.connection.driver_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def staged(connection: Connection, name: str, columns: str) -> str:
    """The name of a temporary table ``name`` with ``columns`` (SQL) on this connection,
    created if it is not there (each time: a transaction that created it and rolled
    back took it away); its rows are deleted at every commit."""
    raw: Any = connection.connection.driver_connection
    raw.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
    return name
