"""The control plane's migration revisions, as modules (their frozen constants)."""

from __future__ import annotations

from types import ModuleType

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from controlplane.migrate import SCRIPTS


def revision(name: str) -> ModuleType:
    """The module of revision ``name`` (e.g. "0001": the baseline)."""
    script = ScriptDirectory(str(SCRIPTS)).get_revision(name)
    assert script is not None, name
    return script.module


def forget_migrations(connection: Connection) -> None:
    """What a database made before migrations existed lacks: ``alembic_version``, and the
    tables later revisions added (those not in the baseline's schema)."""
    connection.execute(text("DROP TABLE alembic_version"))
    known = set(revision("0001").baseline().tables)
    for table in inspect(connection).get_table_names():
        if table not in known:
            connection.execute(text(f'DROP TABLE "{table}"'))
