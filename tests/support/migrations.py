"""The control plane's migration revisions, as modules (their frozen constants)."""

from __future__ import annotations

from types import ModuleType

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

from controlplane.migrate import SCRIPTS


def revision(name: str) -> ModuleType:
    """The module of revision ``name`` (e.g. "0001": the baseline)."""
    script = ScriptDirectory(str(SCRIPTS)).get_revision(name)
    assert script is not None, name
    return script.module


def forget_migrations(connection: Connection) -> None:
    """What a database made before migrations existed lacks: ``alembic_version``, and the
    tables, indexes and columns later revisions added (those not in the baseline's
    schema)."""
    connection.execute(text("DROP TABLE alembic_version"))
    baseline = revision("0001").baseline()
    found = inspect(connection)
    later = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]  # dependents first
    for table in later:
        if table not in baseline.tables and table in found.get_table_names():
            connection.execute(text(f'DROP TABLE "{table}"'))
    for table in found.get_table_names():
        if table not in baseline.tables:
            continue
        known = {index.name for index in baseline.tables[table].indexes}
        for index in found.get_indexes(table):
            # ix_: an index of ours (unique constraints show as indexes too)
            if str(index["name"]).startswith("ix_") and index["name"] not in known:
                connection.execute(text(f'DROP INDEX "{index["name"]}"'))
    for table in found.get_table_names():  # columns later revisions added to its tables
        if table not in baseline.tables:
            continue
        columns = {column.name for column in baseline.tables[table].columns}
        for column in found.get_columns(table):
            if column["name"] not in columns:
                connection.execute(text(f'ALTER TABLE "{table}" DROP COLUMN "{column["name"]}"'))
