"""The restore drill of docs/operations.md, with its own scripts: a control plane on
SQLite or PostgreSQL holds a signed model version, an API token, an enrolled device and
an enrollment token not yet used; ``scripts/backup.sh`` backs it up while it serves;
``scripts/restore.sh`` restores it into an empty database and data directory; a control
plane started on them serves every one of those as before. A backup whose checksums
differ restores nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from model_store import generate_private_key
from model_store.device_certs import make_csr
from tests.support.controlplane import (
    ControlPlaneProcess,
    run_controlplane,
    signed_bundle,
    upload_bundle,
)
from tests.support.mosquitto import Broker
from tests.support.postgres import postgres_database
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(
    name: str, arg: Path, *, database_url: str, data_dir: Path
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "EDGEFLEET_DATA_DIR": str(data_dir)}
    env["PYTHON"] = sys.executable
    return subprocess.run(
        ["bash", str(SCRIPTS / name), str(arg)], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@contextmanager
def _empty_database(like: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same kind as ``like``."""
    if like.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'edgefleet.db'}"
    else:
        with postgres_database() as url:
            yield url


def _enroll(cp: ControlPlaneProcess, token: str, device_id: str) -> int:
    csr = make_csr(generate_private_key(), device_id).decode()
    with cp.client() as http:
        return http.post("/api/v1/enroll", json={"token": token, "csr": csr}).status_code


def test_a_backup_taken_while_serving_restores_everything(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit, database_url: str
) -> None:
    bundle = signed_bundle(tmp_path, name="det", version="1.0.0", private_key=trust_kit.release_key)
    backup = tmp_path / "backup"
    with run_controlplane(
        tmp_path / "first", mqtt_url=mosquitto.url, trust_kit=trust_kit, database_url=database_url
    ) as cp:
        with cp.client() as http:
            assert upload_bundle(http, bundle).status_code == 201
            operator = http.post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
            assert operator.status_code == 201, operator.text
            used = http.post("/api/v1/devices/cam-1/enrollment", json={"fleet": "store"})
            spare = http.post("/api/v1/devices/cam-2/enrollment", json={"fleet": "store"})
        assert _enroll(cp, used.json()["token"], "cam-1") == 200
        done = _script("backup.sh", backup, database_url=database_url, data_dir=cp.data_dir)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in backup.iterdir()) == [
        "SHA256SUMS",
        "blobs.tar",
        "database.pgdump" if database_url.startswith("postgresql") else "edgefleet.db",
    ]

    with _empty_database(database_url, tmp_path) as target:
        second = tmp_path / "second"
        done = _script(
            "restore.sh", backup, database_url=target, data_dir=second / "controlplane-data"
        )
        assert done.returncode == 0, done.stderr
        with run_controlplane(
            second, mqtt_url=mosquitto.url, trust_kit=trust_kit, database_url=target
        ) as restored:
            with restored.client() as http:
                versions = http.get("/api/v1/models/det").json()["versions"]
                assert [v["version"] for v in versions] == ["1.0.0"]
                for ref in [*bundle.files, bundle.signature]:
                    blob = http.get(f"/api/v1/blobs/sha256/{ref.sha256}")
                    assert blob.status_code == 200
                    assert hashlib.sha256(blob.content).hexdigest() == ref.sha256
                devices = {d["id"]: d for d in http.get("/api/v1/devices").json()}
                assert devices["cam-1"]["fleet"] == "store"
            headers = {"authorization": f"Bearer {operator.json()['token']}"}
            whoami = httpx.get(f"{restored.url}/api/v1/whoami", headers=headers, timeout=5)
            assert whoami.json()["name"] == "ci"
            assert _enroll(restored, used.json()["token"], "cam-1") == 401  # spent stays spent
            assert _enroll(restored, spare.json()["token"], "cam-2") == 200


def test_a_backup_that_fails_its_checksums_restores_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "blobs" / "sha256" / "ab").mkdir(parents=True)
    (data / "blobs" / "sha256" / "ab" / "cdef").write_bytes(b"blob")
    url = f"sqlite:///{data / 'edgefleet.db'}"
    import sqlite3

    with sqlite3.connect(data / "edgefleet.db") as db:
        db.execute("create table t (x)")
    backup = tmp_path / "backup"
    assert _script("backup.sh", backup, database_url=url, data_dir=data).returncode == 0
    tar = backup / "blobs.tar"
    tar.write_bytes(tar.read_bytes().replace(b"blob", b"bolb"))
    target = tmp_path / "target"
    done = _script(
        "restore.sh", backup, database_url=f"sqlite:///{target / 'edgefleet.db'}", data_dir=target
    )
    assert done.returncode == 1
    assert "fails its checksums; nothing restored" in done.stderr
    assert not target.exists()
