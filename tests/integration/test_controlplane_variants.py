"""Per-hardware variants on the control plane, on SQLite and PostgreSQL.

First the database level (real crud, ingestion, desired state and command signing; MQTT
is the in-memory publisher): what devices report decides the variant they are sent.
Then the HTTP API of a real control-plane process: registering a variant runs the same
checks as a version's default bundle, with real signed ONNX and OpenVINO IR bundles.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.commands import CommandSigner, publish_commands
from controlplane.crud.variants import create_variant
from controlplane.desired import desired
from controlplane.errors import Conflict, InvalidRequest
from controlplane.ingest import Ingester
from controlplane.models import Device
from controlplane.publisher import MemoryPublisher, SignedCommand
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    generate_private_key,
    load_private_key,
    sha256_file,
    sign_bundle,
)
from protocol import ActiveModel, DesiredState, FileRef, TopicKind, device_topic
from tests.support.controlplane import (
    DET_V1_DIGEST,
    ControlPlaneProcess,
    SignedBundle,
    open_command,
    run_controlplane,
    signer,
    state_report,
    upload_blobs,
    upload_bundle,
)
from tests.support.identity import SealingIngester, sealing
from tests.support.mosquitto import Broker
from tests.support.onnx_models import affine_model, two_input_model
from tests.support.openvino_models import two_input_ir
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

IR_DIGEST = "1f" * 32
XEON, RPI = ["openvino", "onnxruntime"], ["onnxruntime", "openvino"]


# -- database level ---------------------------------------------------------------------


@pytest.fixture
def cmd(engine: Engine, trust_kit: TrustKit) -> CommandSigner:
    return signer(engine, trust_kit)


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def ingester(
    engine: Engine, publisher: MemoryPublisher, cmd: CommandSigner, trust_kit: TrustKit
) -> SealingIngester:
    return sealing(Ingester(engine, publisher, cmd), engine, cmd, trust_kit)


def _report(ingester: SealingIngester, device_id: str, **fields: Any) -> None:
    ingester.handle(device_topic(device_id, TopicKind.STATE), state_report(device_id, **fields))


def _add_ir_variant(engine: Engine, version: str = "1.0.0", digest: str = IR_DIGEST) -> None:
    with Session(engine) as session:
        found = crud.get_model_version(session, model="det", version=version)
        assert found is not None
        create_variant(
            session,
            version=found,
            variant="openvino",
            bundle_digest=digest,
            signature=FileRef(path=SIGNATURE_FILENAME, sha256="12" * 32, size=11),
            files=[
                FileRef(path="det.xml", sha256="34" * 32, size=40),
                FileRef(path="det.bin", sha256="56" * 32, size=50),
            ],
            metadata={"name": "det", "version": version, "framework": "openvino"},
            key_id="k",
        )


def _chosen(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {d.device_id: d.assignments[0].bundle_digest for d in desired(session)}


def _opened(command: SignedCommand | None, kit: TrustKit) -> DesiredState:
    assert command is not None
    return open_command(command.raw, kit)


def _state(publisher: MemoryPublisher, device_id: str, kit: TrustKit) -> DesiredState:
    """The last command published to ``device_id``, opened as its agent would."""
    return _opened(publisher.latest(device_id), kit)


def _publish(engine: Engine, cmd: CommandSigner, publisher: MemoryPublisher) -> int:
    with Session(engine) as session:
        return publish_commands(session, cmd, publisher, changed_only=True)


def test_devices_store_their_profile_and_runtimes_and_default_the_hw_label(
    engine: Engine, ingester: SealingIngester
) -> None:
    _report(ingester, "xeon", profile="xeon-amx", runtimes=XEON)
    _report(ingester, "old")  # an older agent: no profile, no runtimes, no label
    with Session(engine) as session:
        device = session.get(Device, "xeon")
        assert device is not None
        assert (device.profile, device.runtimes, device.labels) == (
            "xeon-amx",
            XEON,
            {"hw": "xeon-amx"},
        )
        device.labels = {"hw": "lab-box", "region": "eu"}  # the operator's label stays
        session.add(device)
        session.commit()
        old = session.get(Device, "old")
        assert old is not None and (old.profile, old.runtimes, old.labels) == (None, [], {})
    _report(ingester, "xeon", profile="xeon-amx", runtimes=["onnxruntime"])
    with Session(engine) as session:
        device = session.get(Device, "xeon")
        assert device is not None
        assert device.labels == {"hw": "lab-box", "region": "eu"}
        assert device.runtimes == ["onnxruntime"]


def test_each_device_is_sent_the_variant_its_runtimes_prefer(
    engine: Engine,
    ingester: SealingIngester,
    cmd: CommandSigner,
    publisher: MemoryPublisher,
    trust_kit: TrustKit,
) -> None:
    _add_ir_variant(engine)
    for device_id, runtimes in (("xeon", XEON), ("rpi", RPI), ("old", [])):
        _report(ingester, device_id, profile=None, runtimes=runtimes)
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    assert _chosen(engine) == {"xeon": IR_DIGEST, "rpi": DET_V1_DIGEST, "old": DET_V1_DIGEST}
    assert _publish(engine, cmd, publisher) == 3
    xeon = _state(publisher, "xeon", trust_kit)
    (model,) = xeon.models
    assert (model.version, model.bundle_digest) == ("1.0.0", IR_DIGEST)
    assert [f.path for f in model.files] == ["det.bin", "det.xml"]
    assert model.size == 11 + 40 + 50  # the variant's signature and files
    rpi = _state(publisher, "rpi", trust_kit)
    assert rpi.models[0].bundle_digest == DET_V1_DIGEST and rpi.models[0].size == 30


def test_a_change_of_chosen_variant_re_signs_only_the_devices_it_moves(
    engine: Engine,
    ingester: SealingIngester,
    cmd: CommandSigner,
    publisher: MemoryPublisher,
    trust_kit: TrustKit,
) -> None:
    for device_id, runtimes in (("xeon", XEON), ("rpi", RPI)):
        _report(ingester, device_id, runtimes=runtimes)
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    assert _publish(engine, cmd, publisher) == 2
    before = {d: publisher.latest(d) for d in ("xeon", "rpi")}
    assert _publish(engine, cmd, publisher) == 0  # nothing changed: nothing re-signed

    _add_ir_variant(engine)  # the version gains an IR: only the OpenVINO device moves
    assert _publish(engine, cmd, publisher) == 1
    moved = _state(publisher, "xeon", trust_kit)
    first = _opened(before["xeon"], trust_kit)
    assert moved.models[0].bundle_digest == IR_DIGEST
    assert moved.generation == first.generation + 1
    assert publisher.latest("rpi") == before["rpi"]

    # The device now prefers ONNX Runtime (say OpenVINO was removed): back to the
    # default, re-signed by the ingestion of that very report.
    _report(ingester, "xeon", runtimes=["onnxruntime"], generation=moved.generation)
    back = _state(publisher, "xeon", trust_kit)
    assert back.models[0].bundle_digest == DET_V1_DIGEST
    assert back.generation == moved.generation + 1
    assert _publish(engine, cmd, publisher) == 0  # nothing left to re-sign
    _report(ingester, "rpi", runtimes=RPI)  # same runtimes again: nothing re-signed
    assert publisher.latest("rpi") == before["rpi"]


def test_a_device_running_a_variant_settles_its_target_as_activated(
    engine: Engine, ingester: SealingIngester, cmd: CommandSigner, publisher: MemoryPublisher
) -> None:
    _add_ir_variant(engine)
    _report(ingester, "xeon", runtimes=XEON)
    with Session(engine) as session:
        deployment, _, _ = crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
    _publish(engine, cmd, publisher)
    running = ActiveModel(name="det", version="1.0.0", bundle_digest=IR_DIGEST, backend="ov")
    _report(ingester, "xeon", runtimes=XEON, generation=1, active=[running])
    with Session(engine) as session:
        assert deployment.id is not None
        target = crud.get_target(session, deployment_id=deployment.id, device_id="xeon")
        assert target is not None and target.status == "activated"


def test_variant_registration_is_idempotent_and_refuses_conflicts(engine: Engine) -> None:
    _add_ir_variant(engine)
    _add_ir_variant(engine)  # the same again: fine
    with pytest.raises(Conflict, match=r"variant 'openvino' of det 1\.0\.0 already exists"):
        _add_ir_variant(engine, digest="2e" * 32)
    with Session(engine) as session:
        version = crud.get_model_version(session, model="det", version="1.0.0")
        assert version is not None
        refs: dict[str, Any] = {
            "signature": FileRef(path=SIGNATURE_FILENAME, sha256="12" * 32, size=11),
            "files": [FileRef(path="m.onnx", sha256="34" * 32, size=4)],
            "key_id": None,
        }
        with pytest.raises(Conflict, match="already variant 'default'"):
            create_variant(
                session,
                version=version,
                variant="copy",
                bundle_digest=DET_V1_DIGEST,
                metadata={},
                **refs,
            )
        other = {"inputs": [{"name": "image", "dtype": "uint8", "shape": [1]}]}
        with pytest.raises(InvalidRequest, match="inputs image:uint8, but the version's"):
            create_variant(
                session,
                version=version,
                variant="odd",
                bundle_digest="3d" * 32,
                metadata=other,
                **refs,
            )


# -- HTTP API of a real control plane ---------------------------------------------------


def _signed(workdir: Path, source: Path, *, version: str, key: Any) -> SignedBundle:
    """``source`` (an ONNX file or an IR) as a signed bundle of det ``version``."""
    (workdir / "bundles").mkdir(exist_ok=True)
    directory = Path(tempfile.mkdtemp(dir=workdir / "bundles")) / "bundle"
    build_bundle(source, directory, name="det", version=version)
    sig = sign_bundle(directory, key)
    files = [FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(directory)]
    signature = FileRef(path=SIGNATURE_FILENAME, sha256=sha256_file(sig), size=sig.stat().st_size)
    return SignedBundle("det", version, directory, files, signature)


def _post_variant(cp: ControlPlaneProcess, bundle: SignedBundle, variant: str) -> Any:
    with cp.client(timeout=30) as http:
        upload_blobs(http, bundle)
        return http.post(
            "/api/v1/models/det/versions", json=bundle.request() | {"variant": variant}
        )


@pytest.fixture
def cp(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit, database_url: str
) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(
        tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, database_url=database_url
    ) as process:
        yield process


def test_variants_are_verified_like_default_bundles_and_listed(
    cp: ControlPlaneProcess, trust_kit: TrustKit, tmp_path: Path
) -> None:
    key = load_private_key(trust_kit.release_key)
    onnx = _signed(
        tmp_path, two_input_model(tmp_path / "src" / "det.onnx"), version="1.5.0", key=key
    )
    xml, _ = two_input_ir(tmp_path / "ir" / "det.xml")
    ir = _signed(tmp_path, xml, version="1.5.0", key=key)

    # A variant of a version that is not registered yet: register the default first.
    early = _post_variant(cp, ir, "openvino")
    assert early.status_code == 404 and "register its default bundle first" in early.text

    with cp.client(timeout=30) as http:
        assert upload_bundle(http, onnx).status_code == 201
    created = _post_variant(cp, ir, "openvino")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["framework"] == "onnx" and body["metadata"]["model_file"] == "det.onnx"
    (variant,) = body["variants"]
    assert variant["variant"] == "openvino" and variant["framework"] == "openvino"
    assert {f["path"] for f in variant["files"]} == {"det.xml", "det.bin", "edgefleet.json"}
    assert variant["metadata"]["model_file"] == "det.xml"
    assert variant["bundle_digest"] != body["bundle_digest"]

    again = _post_variant(cp, ir, "openvino")  # identical: idempotent
    assert again.status_code == 200 and again.json()["variants"] == body["variants"]
    default_again = _post_variant(cp, onnx, "default")  # "default" names the version's own
    assert default_again.status_code == 200 and default_again.json()["variants"] == [variant]

    other_xml, _ = two_input_ir(tmp_path / "ir2" / "det.xml", weight=2.0)
    other = _signed(tmp_path, other_xml, version="1.5.0", key=key)
    conflict = _post_variant(cp, other, "openvino")
    assert conflict.status_code == 409 and "already exists with bundle digest" in conflict.text
    twice = _post_variant(cp, ir, "ir-copy")
    assert twice.status_code == 409 and "already variant 'openvino'" in twice.text

    # The same checks as a default bundle: version in the metadata, trusted signature.
    wrong_version = _signed(tmp_path, xml, version="1.6.0", key=key)
    wrong_version.version = "1.5.0"  # posted under 1.5.0, its metadata says 1.6.0
    refused = _post_variant(cp, wrong_version, "ov2")
    assert refused.status_code == 400 and "says version '1.6.0'" in refused.text
    untrusted = _signed(tmp_path, xml, version="1.5.0", key=generate_private_key())
    refused = _post_variant(cp, untrusted, "ov3")
    assert refused.status_code == 400, refused.text
    affine = _signed(
        tmp_path, affine_model(tmp_path / "aff" / "det.onnx"), version="1.5.0", key=key
    )
    refused = _post_variant(cp, affine, "affine")
    assert refused.status_code == 400 and "has inputs x:float32" in refused.text
    bad_name = _post_variant(cp, ir, "no spaces")
    assert bad_name.status_code == 422

    with cp.client(timeout=10) as http:
        shown = http.get("/api/v1/models/det/versions/1.5.0").json()
        listed = http.get("/api/v1/models").json()
        model = http.get("/api/v1/models/det").json()
    assert shown["variants"] == [variant]
    assert listed[0]["versions"][0]["variants"] == [variant] == model["versions"][0]["variants"]
