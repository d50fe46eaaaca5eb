"""Schema migrations (issue 16.2), on SQLite and PostgreSQL.

``tests/data/pre_migrations/*.sql`` are databases as the control plane made them before
migrations existed (commit 9a39d47: ``create_all`` at start-up, no ``alembic_version``),
filled through its API and ingestion (a fleet on det 1.0.0 with heartbeats, a device of
another fleet, a rollout to 2.0.0 under way, operator, viewer and revoked API tokens, an
enrollment token), dumped with ``sqlite3 .dump`` and ``pg_dump --inserts``. Upgraded to
the newest revision, they keep every row, readable through today's models.

And: the models match the newest revision (a schema change without its migration fails
here); start-up refuses a database migrated by a newer release, in one line; replicas
migrating together on PostgreSQL apply each revision once; ``edgefleet-controlplane
migrate`` upgrades and ``--status`` says where a database stands.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, make_url, text
from sqlmodel import Session, SQLModel, select

from controlplane import migrate
from controlplane.cli import main as controlplane_main
from controlplane.crud.tokens import find_token
from controlplane.db import init_db, make_engine, schema_revision
from controlplane.errors import ConfigError
from controlplane.identity.tables import EnrollmentToken
from controlplane.migrate import head
from controlplane.models import ApiToken, Device, ModelVersion, Rollout, RolloutDevice
from controlplane.views import device_public
from tests.support.controlplane import ADMIN_TOKEN

pytestmark = pytest.mark.integration

DUMPS = Path(__file__).resolve().parents[1] / "data" / "pre_migrations"
#: every table of the pre-migration schema
TABLES = (
    "apitoken", "deployment", "deploymenttarget", "device", "devicecommand",
    "deviceidentity", "enrollmenttoken", "fleet", "heartbeatsample", "issuedcertificate",
    "lease", "model", "modelvariant", "modelversion", "rollout", "rolloutdevice",
    "trustversion",
)  # fmt: skip


def _load_dump(database_url: str) -> None:
    """The pre-migration database, as dumped, into the fresh database ``database_url``."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        with sqlite3.connect(url.database) as conn:
            conn.executescript((DUMPS / "sqlite.sql").read_text())
        return
    # psql's meta-commands (\restrict) are not SQL
    script = "\n".join(
        line
        for line in (DUMPS / "postgresql.sql").read_text().splitlines()
        if not line.startswith("\\")
    )
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script.encode())


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in TABLES}


def test_a_database_from_before_migrations_upgrades_with_nothing_lost(database_url: str) -> None:
    _load_dump(database_url)
    engine = make_engine(database_url)
    try:
        assert "alembic_version" not in inspect(engine).get_table_names()
        before = _counts(engine)
        assert before["device"] == 5 and before["rolloutdevice"] == 4, before
        assert before["apitoken"] == 4 and before["heartbeatsample"] > 0, before
        with engine.begin() as conn:  # an index added after its table first shipped
            conn.execute(text("DROP INDEX ix_device_fleet"))

        migrated = init_db(engine)  # what start-up does

        assert (migrated.before, migrated.after) == (None, head())
        assert _counts(engine) == before
        assert schema_revision(engine) == head()
        assert "ix_device_fleet" in {i["name"] for i in inspect(engine).get_indexes("device")}
        with Session(engine) as session:
            devices = session.exec(select(Device).order_by(Device.id)).all()
            assert [d.id for d in devices] == ["d00", "d01", "d02", "d03", "s00"]
            assert {d.fleet for d in devices} == {"f", "store-eu"}
            shown = [device_public(d) for d in devices]
            assert shown[0].active_version == "2.0.0"  # the canary took the new version
            assert [m.version for m in shown[1].models] == ["1.0.0"]
            assert shown[4].last_heartbeat is not None
            (rollout,) = session.exec(select(Rollout)).all()
            assert rollout.state == "running"
            targets = session.exec(select(RolloutDevice)).all()
            assert sorted(t.device_id for t in targets) == ["d00", "d01", "d02", "d03"]
            versions = session.exec(select(ModelVersion)).all()
            assert {v.version for v in versions} >= {"1.0.0", "2.0.0"}
            tokens = {t.name: t for t in session.exec(select(ApiToken)).all()}
            assert {n: t.role for n, t in tokens.items()} == {
                "bootstrap": "admin", "ops": "operator", "watch": "viewer", "gone": "viewer",
            }  # fmt: skip
            assert tokens["gone"].revoked_at is not None and tokens["ops"].revoked_at is None
            admin = find_token(session, token=ADMIN_TOKEN)
            assert admin is not None and admin.name == "bootstrap"  # still signs in
            enrollments = {e.device_id: e for e in session.exec(select(EnrollmentToken)).all()}
            assert enrollments["new-01"].used_at is None  # not redeemed yet
            assert all(enrollments[d].used_at is not None for d in ("d00", "s00"))

        again = init_db(engine)  # the next start-up: nothing to do
        assert (again.before, again.after) == (head(), head())
        with engine.connect() as conn:  # and it is the schema a new database gets
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_the_models_match_the_newest_revision(database_url: str) -> None:
    """A model changed without a migration shows up here, on either database."""
    engine = make_engine(database_url)
    try:
        init_db(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_a_database_migrated_by_a_newer_release_is_refused_in_one_line(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(database_url)
    try:
        init_db(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(ConfigError, match=r"revision '9999'.*newer release"):
            init_db(engine)
        assert _counts(engine)["device"] == 0  # untouched
    finally:
        engine.dispose()
    code = controlplane_main(["migrate", "--database-url", database_url])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "newer release" in err, err


def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("one process at a time on SQLite; PostgreSQL serialises with a lock")
    engines = [make_engine(database_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    results: list[object] = []

    def boot(engine: Engine) -> None:
        start.wait()
        try:
            results.append(init_db(engine).before)
        except Exception as exc:  # the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=boot, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert sorted(results, key=str) == sorted([None, head(), head(), head()], key=str), results


def test_migrate_command_upgrades_and_reports_status(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _load_dump(database_url)
    assert controlplane_main(["migrate", "--database-url", database_url, "--status"]) == 1
    assert f"at (none); this release's newest is {head()}" in capsys.readouterr().out
    assert controlplane_main(["migrate", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert f"migrated from (none) to {head()}" in out and "@" not in out.split(":")[0]
    assert controlplane_main(["migrate", "--database-url", database_url, "--status"]) == 0
    assert f"at {head()} (this release's newest)" in capsys.readouterr().out


# -- a later revision, as the next schema change will be ------------------------------

REBUILD_FLEET = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"


def upgrade() -> None:
    # SQLite rebuilds the table (copy, drop, rename) while devices point at it
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("fleet", recreate="always" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("region", sa.String(32), nullable=True))
"""

FAILING = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"


def upgrade() -> None:
    op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))
    raise RuntimeError("this revision fails half-way")
"""


#: the newest revision of this release, and the one the tests below add after it
NEWEST = head()
NEXT = f"{int(NEWEST) + 1:04d}"


def _revision(template: str) -> str:
    return template.replace("{rev}", NEXT).replace("{down}", NEWEST)


@pytest.fixture
def next_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the migrations whose ``versions/NNNN_next.py`` (after the newest) the
    test writes."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "SCRIPTS", scripts)
    migrate._scripts.cache_clear()
    yield scripts / "versions" / f"{NEXT}_next.py"
    migrate._scripts.cache_clear()


def test_a_revision_that_rebuilds_a_referenced_table_keeps_every_row(
    database_url: str, next_revision: Path
) -> None:
    _load_dump(database_url)
    next_revision.write_text(_revision(REBUILD_FLEET))
    engine = make_engine(database_url)
    try:
        before = _counts(engine)
        assert init_db(engine).after == NEXT
        assert _counts(engine) == before
        tables = inspect(engine).get_table_names()
        assert not [t for t in tables if t.startswith("_alembic_tmp")], tables
        assert "region" in {c["name"] for c in inspect(engine).get_columns("fleet")}
        if database_url.startswith("sqlite"):
            with engine.connect() as conn:  # enforced again for the server
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_revision_that_fails_changes_nothing(database_url: str, next_revision: Path) -> None:
    engine = make_engine(database_url)
    try:
        init_db(engine)
        next_revision.write_text(_revision(FAILING))
        migrate._scripts.cache_clear()
        with pytest.raises(RuntimeError, match="half-way"):
            init_db(engine)
        assert "scratch" not in inspect(engine).get_table_names()  # rolled back, DDL too
        assert schema_revision(engine) == NEWEST
    finally:
        engine.dispose()
