"""device timeline: ``deviceevent``, what each device's reports changed (controlplane.timeline)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deviceevent",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deviceevent", schema=None) as batch_op:
        batch_op.create_index("ix_deviceevent_at", ["at"], unique=False)
        batch_op.create_index("ix_deviceevent_device_at", ["device_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deviceevent", schema=None) as batch_op:
        batch_op.drop_index("ix_deviceevent_device_at")
        batch_op.drop_index("ix_deviceevent_at")

    op.drop_table("deviceevent")
