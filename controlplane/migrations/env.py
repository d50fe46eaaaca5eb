"""Alembic's environment: runs on the connection ``controlplane.migrate`` hands over
(``config.attributes["connection"]``), with no ``alembic.ini`` and no logging set-up of
its own."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString


def _render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    """SQLModel's string type written as plain ``sa.String`` in new revisions."""
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False  # Alembic's own rendering


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
    compare_type=True,
    render_item=_render_item,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
