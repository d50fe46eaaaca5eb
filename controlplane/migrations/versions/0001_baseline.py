"""Baseline: the schema as it stood when migrations began (issue 16).

Also what a database made before migrations existed (tables made by ``create_all`` at
start-up, no ``alembic_version``) needs to reach it, so this revision is idempotent:

* tables that do not exist are created, and indexes a table lacks (added with a later
  release than the table) are created on it;
* columns added to an existing table after it first shipped (``ADDED_COLUMNS``) are
  added where missing, a default filling old rows where the column is NOT NULL;
* generation columns still INTEGER on PostgreSQL are widened to BIGINT.

The definitions below are frozen: they describe this revision, not today's models.
A later schema change is a later revision (docs/controlplane.md).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

logger = logging.getLogger("controlplane.migrations")

#: Columns that hold generations: BIGINT (signed 64-bit, ``protocol.MAX_GENERATION``).
GENERATION_COLUMNS = (
    ("device", "generation"),
    ("device", "reported_generation"),
    ("deploymenttarget", "generation"),
)
#: Columns added after their table first shipped: (table, column, default for old rows).
#: A default makes the column NOT NULL (old rows get it); None leaves it nullable.
ADDED_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("fleet", "pinned_backend", None),
    ("device", "pinned_backend", None),
    ("device", "selections", "'{}'"),
    ("devicecommand", "backend", None),
    ("device", "labels", "'{}'"),
    ("device", "profile", None),
    ("device", "runtimes", "'[]'"),
    ("deployment", "rollout_id", None),
    ("device", "key_id", None),
    ("device", "report_windows", "'{}'"),
    ("deviceidentity", "report_key", None),
    ("rolloutdevice", "judged_at", None),
    ("rolloutdevice", "target_model_version_id", None),
    ("deployment", "remove", "false"),
    ("rollout", "remove", "false"),
    ("deployment", "priority", None),
    ("rollout", "priority", None),
    ("device", "models", "'[]'"),
    ("device", "memory", None),
    ("fleet", "model_pins", "'{}'"),
    ("device", "model_pins", "'{}'"),
)


def upgrade() -> None:
    bind = op.get_bind()
    schema = baseline()
    schema.create_all(bind, checkfirst=True)
    _add_missing_indexes(bind, schema)
    _add_missing_columns(bind, schema)
    _widen_generations(bind)


def downgrade() -> None:
    baseline().drop_all(op.get_bind())


def _add_missing_indexes(bind: sa.Connection, schema: sa.MetaData) -> None:
    for table in schema.sorted_tables:
        have = {i["name"] for i in sa.inspect(bind).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have:
                logger.warning("adding index %s to an older database", index.name)
                index.create(bind, checkfirst=True)


def _add_missing_columns(bind: sa.Connection, schema: sa.MetaData) -> None:
    for table, column, default in ADDED_COLUMNS:
        if column in {c["name"] for c in sa.inspect(bind).get_columns(table)}:
            continue
        kind = schema.tables[table].c[column].type.compile(dialect=bind.dialect)
        tail = f" NOT NULL DEFAULT {default}" if default is not None else ""
        logger.warning("adding column %s.%s (%s) to an older database", table, column, kind)
        bind.execute(sa.text(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}{tail}'))


def _widen_generations(bind: sa.Connection) -> None:
    """SQLite's INTEGER is 64-bit already; PostgreSQL's int4 columns become BIGINT."""
    if bind.dialect.name != "postgresql":
        return
    for table, column in GENERATION_COLUMNS:
        kinds = {c["name"]: c["type"] for c in sa.inspect(bind).get_columns(table)}
        kind = kinds.get(column)
        if isinstance(kind, sa.Integer) and not isinstance(kind, sa.BigInteger):
            logger.warning("widening %s.%s from %s to BIGINT", table, column, kind)
            bind.execute(sa.text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE BIGINT'))


def _index(schema: sa.MetaData, name: str, table: str, columns: list[str], *, unique: bool) -> None:
    sa.Index(name, *(schema.tables[table].c[c] for c in columns), unique=unique)


def baseline() -> sa.MetaData:
    """The tables, columns and indexes of revision 0001."""
    schema = sa.MetaData()
    sa.Table(
        "apitoken",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_apitoken_token_sha256", "apitoken", ["token_sha256"], unique=True)
    sa.Table(
        "enrollmenttoken",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("fleet", sa.String(length=128), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_enrollmenttoken_device_id", "enrollmenttoken", ["device_id"], unique=False)
    _index(
        schema, "ix_enrollmenttoken_token_sha256", "enrollmenttoken", ["token_sha256"], unique=True
    )
    sa.Table(
        "fleet",
        schema,
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned_backend", sa.String(length=128), nullable=True),
        sa.Column("model_pins", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    sa.Table(
        "heartbeatsample",
        schema,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("backend", sa.String(length=256), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=True),
        sa.Column("p95_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_heartbeatsample_at", "heartbeatsample", ["at"], unique=False)
    _index(
        schema,
        "ix_heartbeatsample_device_model_at",
        "heartbeatsample",
        ["device_id", "model", "at"],
        unique=False,
    )
    sa.Table(
        "issuedcertificate",
        schema,
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    _index(
        schema, "ix_issuedcertificate_device_id", "issuedcertificate", ["device_id"], unique=False
    )
    sa.Table(
        "lease",
        schema,
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    sa.Table(
        "model",
        schema,
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    sa.Table(
        "trustversion",
        schema,
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    sa.Table(
        "device",
        schema,
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("fleet", sa.String(length=128), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("agent_version", sa.String(), nullable=True),
        sa.Column("active_model", sa.String(), nullable=True),
        sa.Column("active_version", sa.String(), nullable=True),
        sa.Column("active_bundle_digest", sa.String(), nullable=True),
        sa.Column("backend", sa.String(), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("reported_generation", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("local_api", sa.String(), nullable=True),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat", sa.JSON(), nullable=True),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned_backend", sa.String(length=128), nullable=True),
        sa.Column("model_pins", sa.JSON(), nullable=False),
        sa.Column("selections", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("profile", sa.String(length=128), nullable=True),
        sa.Column("runtimes", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("report_windows", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("memory", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["fleet"],
            ["fleet.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_device_fleet", "device", ["fleet"], unique=False)
    sa.Table(
        "modelversion",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("bundle_digest", sa.String(length=64), nullable=False),
        sa.Column("signature_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature_size", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("bundle_metadata", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"],
            ["model.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "version"),
    )
    _index(schema, "ix_modelversion_model", "modelversion", ["model"], unique=False)
    sa.Table(
        "deployment",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("fleet", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("remove", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["fleet"],
            ["fleet.name"],
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["modelversion.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_deployment_fleet", "deployment", ["fleet"], unique=False)
    _index(
        schema, "ix_deployment_model_version_id", "deployment", ["model_version_id"], unique=False
    )
    sa.Table(
        "deviceidentity",
        schema,
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("report_key", sa.String(length=64), nullable=True),
        sa.Column("cert_serial", sa.String(length=64), nullable=False),
        sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("device_id"),
    )
    sa.Table(
        "modelvariant",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("bundle_digest", sa.String(length=64), nullable=False),
        sa.Column("signature_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature_size", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("bundle_metadata", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["modelversion.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_version_id", "variant"),
    )
    _index(
        schema,
        "ix_modelvariant_model_version_id",
        "modelvariant",
        ["model_version_id"],
        unique=False,
    )
    sa.Table(
        "deploymenttarget",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "device_id"),
    )
    _index(
        schema,
        "ix_deploymenttarget_deployment_id",
        "deploymenttarget",
        ["deployment_id"],
        unique=False,
    )
    _index(schema, "ix_deploymenttarget_device_id", "deploymenttarget", ["device_id"], unique=False)
    sa.Table(
        "devicecommand",
        schema,
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("trust_version", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("backend", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("device_id"),
    )
    _index(
        schema, "ix_devicecommand_deployment_id", "devicecommand", ["deployment_id"], unique=False
    )
    sa.Table(
        "rollout",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("fleet", sa.String(length=128), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("strategy", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("current_batch", sa.Integer(), nullable=False),
        sa.Column("batch_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_version", sa.String(length=128), nullable=True),
        sa.Column("remove", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["fleet"],
            ["fleet.name"],
        ),
        sa.ForeignKeyConstraint(
            ["model"],
            ["model.name"],
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["modelversion.id"],
        ),
        sa.ForeignKeyConstraint(
            ["rollback_of"],
            ["rollout.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index(schema, "ix_rollout_fleet", "rollout", ["fleet"], unique=False)
    _index(schema, "ix_rollout_model", "rollout", ["model"], unique=False)
    _index(schema, "ix_rollout_model_version_id", "rollout", ["model_version_id"], unique=False)
    _index(schema, "ix_rollout_state", "rollout", ["state"], unique=False)
    sa.Table(
        "rolloutdevice",
        schema,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("previous_model_version_id", sa.Integer(), nullable=True),
        sa.Column("target_model_version_id", sa.Integer(), nullable=True),
        sa.Column("baseline", sa.JSON(), nullable=True),
        sa.Column("observed", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.ForeignKeyConstraint(
            ["previous_model_version_id"],
            ["modelversion.id"],
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rollout_id", "device_id"),
    )
    _index(schema, "ix_rolloutdevice_device_id", "rolloutdevice", ["device_id"], unique=False)
    _index(schema, "ix_rolloutdevice_rollout_id", "rolloutdevice", ["rollout_id"], unique=False)
    return schema
