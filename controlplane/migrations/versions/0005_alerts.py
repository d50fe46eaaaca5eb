"""alert webhooks, outbox, deliveries and outages (controlplane.alerts)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alertevent",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=True),
        sa.Column("dispatched", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alertevent", schema=None) as batch_op:
        batch_op.create_index("ix_alertevent_dispatched_at", ["dispatched", "at"], unique=False)

    op.create_table(
        "alertwebhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("offline_after_s", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alertdelivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["alertevent.id"],
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["alertwebhook.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook_id", "event_id"),
    )
    with op.batch_alter_table("alertdelivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alertdelivery_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            "ix_alertdelivery_state_next", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alertdelivery_webhook_id"), ["webhook_id"], unique=False
        )

    op.create_table(
        "alertoutage",
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["alertwebhook.id"],
        ),
        sa.PrimaryKeyConstraint("webhook_id", "device_id"),
    )


def downgrade() -> None:
    op.drop_table("alertoutage")
    with op.batch_alter_table("alertdelivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alertdelivery_webhook_id"))
        batch_op.drop_index("ix_alertdelivery_state_next")
        batch_op.drop_index(batch_op.f("ix_alertdelivery_event_id"))

    op.drop_table("alertdelivery")
    op.drop_table("alertwebhook")
    with op.batch_alter_table("alertevent", schema=None) as batch_op:
        batch_op.drop_index("ix_alertevent_dispatched_at")

    op.drop_table("alertevent")
