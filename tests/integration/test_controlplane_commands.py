"""Signed deployment commands and the stored trust chain, on SQLite and PostgreSQL.

MQTT is the in-memory publisher; signing, storage and the trust chain are the real code.
The republish rule under test: byte-identical while still good, else a new generation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from controlplane import crud
from controlplane.blob_urls import BlobUrls
from controlplane.commands import CommandSigner, publish_commands
from controlplane.db import init_db, make_engine
from controlplane.errors import ConfigError, Unavailable
from controlplane.ingest import Ingester
from controlplane.models import Device, TrustVersion
from controlplane.publisher import MemoryPublisher
from controlplane.trust import TrustStore
from model_store import ArtifactStore, load_public_key, write_keypair
from protocol import TopicKind, device_topic
from tests.support.controlplane import (
    DET_V1_DIGEST,
    DET_V2_DIGEST,
    open_command,
    signer,
    state_report,
    trust_update,
)
from tests.support.identity import sealing
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

A, B = DET_V1_DIGEST, DET_V2_DIGEST
DAY = timedelta(days=1)


@pytest.fixture
def cmd(engine: Engine, trust_kit: TrustKit) -> CommandSigner:
    return signer(engine, trust_kit, ttl_s=7 * 86400)


@pytest.fixture
def publisher(engine: Engine, cmd: CommandSigner, trust_kit: TrustKit) -> MemoryPublisher:
    publisher = MemoryPublisher()
    sealing(Ingester(engine, publisher, cmd), engine, cmd, trust_kit).handle(
        device_topic("d1", TopicKind.STATE), state_report("d1")
    )
    return publisher


def deploy(engine: Engine, version: str) -> None:
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version=version, fleet="f")


def publish(engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, **kw: Any) -> int:
    with Session(engine) as session:
        return publish_commands(session, cmd, publisher, **kw)


def test_republish_is_byte_identical_until_half_the_lifetime_is_gone(
    engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, trust_kit: TrustKit
) -> None:
    deploy(engine, "1.0.0")
    start = datetime.now(UTC)
    assert publish(engine, cmd, publisher, now=start) == 1
    first = publisher.published[-1]
    state = open_command(first.raw, trust_kit)
    assert (state.generation, state.trust_version, state.expires_at) == (1, 1, start + 7 * DAY)
    assert state.models[0].size == 30  # model.sig (10) + model.onnx (20)

    assert publish(engine, cmd, publisher, now=start + 3 * DAY) == 1
    assert publisher.published[-1].raw == first.raw  # the same bytes
    assert publish(engine, cmd, publisher, now=start + 3 * DAY, changed_only=True) == 0

    later = start + 4 * DAY  # less than half of 7 days left: re-signed, a new generation
    assert publish(engine, cmd, publisher, now=later, changed_only=True) == 1
    resigned = open_command(publisher.published[-1].raw, trust_kit)
    assert resigned.generation == 2 and resigned.expires_at == later + 7 * DAY
    assert resigned.models == state.models
    with Session(engine) as session:
        device = session.get(Device, "d1")
        assert device is not None and device.generation == 2


def test_new_deployment_and_rollback_get_higher_generations(
    engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, trust_kit: TrustKit
) -> None:
    for version in ("1.0.0", "2.0.0", "1.0.0"):
        deploy(engine, version)
        publish(engine, cmd, publisher)
    states = [open_command(c.raw, trust_kit) for c in publisher.published]
    assert [(s.generation, s.models[0].bundle_digest) for s in states] == [(1, A), (2, B), (3, A)]


def test_a_device_ahead_of_its_command_gets_a_higher_generation(
    engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, trust_kit: TrustKit
) -> None:
    deploy(engine, "1.0.0")
    publish(engine, cmd, publisher)
    ingester = sealing(Ingester(engine, publisher, cmd), engine, cmd, trust_kit)
    # e.g. the database was restored from a backup older than what the agent accepted
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1", generation=9))
    assert publish(engine, cmd, publisher, changed_only=True) == 1
    assert open_command(publisher.published[-1].raw, trust_kit).generation == 10


def test_nothing_is_signed_once_the_trust_document_drops_our_key(
    engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, trust_kit: TrustKit
) -> None:
    deploy(engine, "1.0.0")
    publish(engine, cmd, publisher)
    first = publisher.published[-1].raw
    _, other = write_keypair(trust_kit.dir, "cp-2")
    with Session(engine) as session:
        cmd.trust.update(session, trust_update(trust_kit, 2, control_planes=[other]))
        with pytest.raises(Unavailable, match="is not certified by trust document v2"):
            cmd.check_ready(session)
    deploy(engine, "2.0.0")  # recorded, but cannot be signed: the last command stays
    assert publish(engine, cmd, publisher) == 1
    assert publisher.published[-1].raw == first


def test_expired_trust_document_stops_signing(
    engine: Engine, cmd: CommandSigner, trust_kit: TrustKit
) -> None:
    with Session(engine) as session:
        cmd.check_ready(session)
        with pytest.raises(Unavailable, match="trust document v1 expired at"):
            cmd.check_ready(session, now=datetime.now(UTC) + 400 * DAY)


def _open(engine: Engine, kit: TrustKit, bootstrap: bytes | None = None) -> TrustStore:
    return TrustStore.open(engine, [load_public_key(kit.root_pub)], bootstrap=bootstrap)


def test_stored_chain_is_reverified_at_start_up(
    engine: Engine, cmd: CommandSigner, trust_kit: TrustKit, tmp_path: Path
) -> None:
    v2, v3 = trust_update(trust_kit, 2), trust_update(trust_kit, 3)
    with Session(engine) as session:
        cmd.trust.update(session, v2)
    assert _open(engine, trust_kit).document.raw() == v2  # no bootstrap needed any more
    # a newer version given at start-up is verified and stored (renewal while down)
    assert _open(engine, trust_kit, bootstrap=v3).document.version == 3
    assert (
        _open(engine, trust_kit, bootstrap=trust_kit.trust_file.read_bytes()).document.version == 3
    )
    with pytest.raises(ConfigError, match="is version 5 but the database holds up to version 3"):
        _open(engine, trust_kit, bootstrap=trust_update(trust_kit, 5))

    _, other_root = write_keypair(tmp_path / "pins", "root")
    with pytest.raises(ConfigError, match="does not verify from the pinned root keys"):
        TrustStore.open(engine, [load_public_key(other_root)], bootstrap=None)

    forger, forger_pub = write_keypair(tmp_path / "forger", "root")
    forged = trust_update(trust_kit, 3, roots=[forger_pub], signers=[forger])
    with Session(engine) as session:  # someone with database access swaps version 3
        session.execute(
            update(TrustVersion).where(col(TrustVersion.version) == 3).values(envelope=forged)
        )
        session.commit()
    with pytest.raises(ConfigError, match="stored trust chain does not verify"):
        _open(engine, trust_kit)


def test_empty_database_needs_a_bootstrap_document(database_url: str, trust_kit: TrustKit) -> None:
    engine = make_engine(database_url)
    init_db(engine)
    try:
        with pytest.raises(ConfigError, match="holds no trust document"):
            _open(engine, trust_kit)
        rejected = ConfigError("refused")

        def refuse(_document: object) -> None:
            raise rejected

        with pytest.raises(ConfigError, match="refused"):
            TrustStore.open(
                engine,
                [load_public_key(trust_kit.root_pub)],
                bootstrap=trust_kit.trust_file.read_bytes(),
                accept=refuse,
            )
        with pytest.raises(ConfigError, match="holds no trust document"):  # nothing stored
            _open(engine, trust_kit)
    finally:
        engine.dispose()


class _Presigning:
    """The one call the signer makes of an object store: a URL per blob (numbered, so
    two signings of the same blob differ as real presigned URLs do)."""

    def __init__(self) -> None:
        self.signed: list[tuple[str, int]] = []

    def presigned_url(self, sha256: str, ttl_s: int) -> str:
        self.signed.append((sha256, ttl_s))
        return f"https://bucket.example/sha256/{sha256}?expires={ttl_s}&n={len(self.signed)}"


def test_download_urls_are_signed_in_but_never_cause_a_new_command(
    engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher, trust_kit: TrustKit
) -> None:
    store = _Presigning()
    cmd.urls = BlobUrls(cast(ArtifactStore, store), ttl_s=900)
    deploy(engine, "1.0.0")
    start = datetime.now(UTC)
    assert publish(engine, cmd, publisher, now=start) == 1
    first = publisher.published[-1]
    (model,) = open_command(first.raw, trust_kit).models
    for ref in (model.signature, *model.files):  # every file, signature included
        assert (ref.url or "").startswith(
            f"https://bucket.example/sha256/{ref.sha256}?expires=900&"
        )
    assert {ttl for _, ttl in store.signed} == {900}
    signed = len(store.signed)
    # republished as it is while good: the URLs it carries are not a change
    assert publish(engine, cmd, publisher, now=start + 3 * DAY) == 1
    assert publisher.published[-1].raw == first.raw and len(store.signed) == signed
    deploy(engine, "2.0.0")  # a new command: new URLs
    assert publish(engine, cmd, publisher, now=start + 3 * DAY, changed_only=True) == 1
    (model,) = open_command(publisher.published[-1].raw, trust_kit).models
    assert model.bundle_digest == B and all(f.url for f in model.files)
    assert len(store.signed) > signed
