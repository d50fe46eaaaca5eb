"""device filter indexes: one on (column, id) per column a page of devices is filtered on

The dashboard's and ``GET /devices``' filters (``controlplane.paging``) read a page in id
order through these; ``ix_device_fleet_id`` replaces ``ix_device_fleet`` (it serves
every lookup by fleet too).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = ("fleet", "status", "active_version", "online", "profile")


def upgrade() -> None:
    op.drop_index("ix_device_fleet", table_name="device")
    for column in _COLUMNS:
        op.create_index(f"ix_device_{column}_id", "device", [column, "id"], unique=False)


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_index(f"ix_device_{column}_id", table_name="device")
    op.create_index("ix_device_fleet", "device", ["fleet"], unique=False)
