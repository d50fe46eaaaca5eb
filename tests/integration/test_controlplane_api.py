"""The control plane's HTTP API and MQTT behaviour against real components.

A real uvicorn serves the app (its lifespan runs the real MQTT bridge), on SQLite and on
PostgreSQL, connected to a private Mosquitto; bundles are built and signed by model_store
from real ONNX models. The test talks MQTT with its own paho clients.
"""

from __future__ import annotations

import hashlib

import pytest

from model_store import generate_private_key
from protocol import (
    DeploymentEvent,
    DeviceStatus,
    EventKind,
    Heartbeat,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    open_command,
    upload_blobs,
    upload_bundle,
)
from tests.support.mqtt_plane import ControlPlane, MqttPeer
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration


def test_blobs_upload_download_and_ranges(cp: ControlPlane) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    digest = hashlib.sha256(data).hexdigest()
    url = f"/api/v1/blobs/sha256/{digest}"
    assert cp.http.get(url).status_code == 404

    chunks = (data[i : i + 1000] for i in range(0, len(data), 1000))  # streamed upload
    created = cp.http.put(url, content=chunks)
    assert created.status_code == 201, created.text
    assert created.json() == {"sha256": digest, "size": len(data), "created": True}
    assert cp.http.put(url, content=data).status_code == 200

    full = cp.http.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["accept-ranges"] == "bytes"
    head = cp.http.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))

    for header, first, last in [
        ("bytes=10-19", 10, 19),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-5", 10235, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ]:
        part = cp.http.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[first : last + 1]
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"

    unsatisfiable = cp.http.get(url, headers={"Range": "bytes=10240-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    assert "detail" in unsatisfiable.json()

    wrong = hashlib.sha256(b"other").hexdigest()
    mismatch = cp.http.put(f"/api/v1/blobs/sha256/{wrong}", content=data)
    assert mismatch.status_code == 400 and "mismatch" in mismatch.json()["detail"]
    assert cp.http.get(f"/api/v1/blobs/sha256/{wrong}").status_code == 404
    assert cp.http.put("/api/v1/blobs/sha256/NOTHEX", content=b"x").status_code == 422


def test_signed_version_is_registered_idempotently(cp: ControlPlane) -> None:
    bundle = cp.bundle("det", "1.0.0")
    created = upload_bundle(cp.http, bundle)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["model"] == "det" and body["version"] == "1.0.0"
    assert len(body["bundle_digest"]) == 64
    assert {f["path"] for f in body["files"]} == {"model.onnx", "edgefleet.json"}
    assert body["metadata"]["model_file"] == "model.onnx"

    again = upload_bundle(cp.http, bundle)
    assert again.status_code == 200 and again.json()["bundle_digest"] == body["bundle_digest"]

    other = cp.bundle("det", "1.0.0-other", scale=3.0)
    other_request = other.request() | {"version": "1.0.0"}
    upload_blobs(cp.http, other)
    refused = cp.http.post("/api/v1/models/det/versions", json=other_request)
    assert refused.status_code == 400  # edgefleet.json says 1.0.0-other

    models = cp.http.get("/api/v1/models").json()
    assert [m["name"] for m in models] == ["det"]
    assert [v["version"] for v in models[0]["versions"]] == ["1.0.0"]
    assert (
        cp.http.get("/api/v1/models/det").json()["versions"][0]["bundle_digest"]
        == body["bundle_digest"]
    )
    assert cp.http.get("/api/v1/models/nope").status_code == 404


def test_conflicting_version_is_409(cp: ControlPlane) -> None:
    assert upload_bundle(cp.http, cp.bundle("det", "1.0.0")).status_code == 201
    changed = cp.bundle("det", "1.0.0", scale=5.0)  # same name+version, other bytes
    response = upload_bundle(cp.http, changed)
    assert response.status_code == 409, response.text
    assert "already exists" in response.json()["detail"]


def test_untrusted_signature_is_refused(cp: ControlPlane) -> None:
    bundle = cp.bundle("det", "1.0.0", key=generate_private_key())
    response = upload_bundle(cp.http, bundle)
    assert response.status_code == 400
    assert "untrusted key" in response.json()["detail"] or "verify" in response.json()["detail"]
    assert cp.http.get("/api/v1/models").json() == []


def test_file_not_matching_the_signature_is_refused(cp: ControlPlane) -> None:
    bundle = cp.bundle("det", "1.0.0")
    upload_blobs(cp.http, bundle)
    impostor = b"not the signed model"
    impostor_digest = hashlib.sha256(impostor).hexdigest()
    cp.http.put(f"/api/v1/blobs/sha256/{impostor_digest}", content=impostor)
    request = bundle.request()
    request["files"] = [
        {"path": "model.onnx", "sha256": impostor_digest, "size": len(impostor)}
        if f["path"] == "model.onnx"
        else f
        for f in request["files"]
    ]
    response = cp.http.post("/api/v1/models/det/versions", json=request)
    assert response.status_code == 400
    assert "model.onnx" in response.json()["detail"]

    missing = bundle.request()
    missing["files"] = [f for f in missing["files"] if f["path"] != "model.onnx"]
    response = cp.http.post("/api/v1/models/det/versions", json=missing)
    assert response.status_code == 400 and "model.onnx" in response.json()["detail"]


def test_blob_not_uploaded_is_refused(cp: ControlPlane) -> None:
    bundle = cp.bundle("det", "1.0.0")
    sig = bundle.signature
    cp.http.put(
        f"/api/v1/blobs/sha256/{sig.sha256}", content=(bundle.directory / sig.path).read_bytes()
    )
    response = cp.http.post("/api/v1/models/det/versions", json=bundle.request())
    assert response.status_code == 400
    assert "not uploaded" in response.json()["detail"]


def test_deployment_to_unknown_things_is_404(cp: ControlPlane) -> None:
    assert upload_bundle(cp.http, cp.bundle("det", "1.0.0")).status_code == 201
    cp.http.post("/api/v1/fleets", json={"name": "store-eu"})
    for body, word in [
        ({"model": "det", "version": "1.0.0", "fleet": "nowhere"}, "unknown fleet 'nowhere'"),
        ({"model": "nope", "version": "1.0.0", "fleet": "store-eu"}, "unknown model 'nope'"),
        ({"model": "det", "version": "9.9.9", "fleet": "store-eu"}, "unknown version '9.9.9'"),
    ]:
        response = cp.http.post("/api/v1/deployments", json=body)
        assert response.status_code == 404
        assert word in response.json()["detail"]
    assert cp.http.get("/api/v1/deployments/12345").status_code == 404


def test_report_registers_device_and_deployments_publish_desired_state(cp: ControlPlane) -> None:
    cp.report("dev-1", "store-eu")
    # enrolled (status unknown) before its first report: wait for the report itself
    wait_until(lambda: (cp.device("dev-1") or {}).get("last_report_at"), 10, "dev-1 reported")
    device = cp.device("dev-1")
    assert device is not None
    assert device["fleet"] == "store-eu" and device["status"] == "idle"
    assert device["local_api"] == "127.0.0.1:8500" and device["hardware"] == {"cpu": "test"}
    fleets = cp.http.get("/api/v1/fleets").json()
    assert fleets == [
        {
            "name": "store-eu",
            "created_at": fleets[0]["created_at"],
            "device_count": 1,
            "pinned_backend": None,
            "model_pins": {},
        }
    ]

    v1 = upload_bundle(cp.http, cp.bundle("det", "1.0.0")).json()
    first = cp.http.post(
        "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "store-eu"}
    )
    assert first.status_code == 201, first.text
    assert first.json()["targets"] == ["dev-1"]
    wait_until(lambda: len(cp.desired("dev-1")) >= 1, 10, "desired state generation 1")
    state = cp.desired("dev-1")[-1]
    assert state.generation == 1 and state.device_id == "dev-1"
    (assignment,) = state.models
    assert (assignment.name, assignment.version) == ("det", "1.0.0")
    assert assignment.deployment_id == first.json()["id"]
    assert assignment.bundle_digest == v1["bundle_digest"]
    assert assignment.signature.path == "model.sig"
    assert {f.path for f in assignment.files} == {"model.onnx", "edgefleet.json"}

    assert upload_bundle(cp.http, cp.bundle("det", "2.0.0", scale=4.0)).status_code == 201
    second = cp.http.post(
        "/api/v1/deployments", json={"model": "det", "version": "2.0.0", "fleet": "store-eu"}
    )
    assert second.status_code == 201
    wait_until(lambda: cp.desired("dev-1")[-1].generation == 2, 10, "desired state generation 2")
    assert cp.desired("dev-1")[-1].models[0].version == "2.0.0"
    assert cp.device("dev-1")["generation"] == 2  # type: ignore[index]

    # retained: a device connecting now gets generation 2 at once
    late = MqttPeer(cp.mqtt.port, "late-agent")
    try:
        late.subscribe(device_topic("dev-1", TopicKind.DESIRED))
        topic = device_topic("dev-1", TopicKind.DESIRED)
        wait_until(lambda: bool(late.received(topic)), 10, "retained desired state")
        assert open_command(late.received(topic)[-1], cp.kit).generation == 2
    finally:
        late.close()

    # the agent's events move the deployment target forward
    event = DeploymentEvent(
        device_id="dev-1",
        deployment_id=second.json()["id"],
        generation=2,
        model_name="det",
        model_version="2.0.0",
        kind=EventKind.ACTIVATED,
    )
    cp.send("dev-1", TopicKind.EVENTS, encode(event), retain=False)
    url = f"/api/v1/deployments/{second.json()['id']}"
    wait_until(
        lambda: cp.http.get(url).json()["targets"][0]["status"] == "activated", 10, "activated"
    )
    detail = cp.http.get(url).json()
    assert detail["targets"][0]["device_id"] == "dev-1"
    assert detail["summary"]["activated"] == 1


def test_new_device_receives_its_fleets_latest_deployment(cp: ControlPlane) -> None:
    assert cp.http.post("/api/v1/fleets", json={"name": "lab"}).status_code == 201
    assert cp.http.post("/api/v1/fleets", json={"name": "lab"}).status_code == 200
    assert upload_bundle(cp.http, cp.bundle("det", "1.0.0")).status_code == 201
    deployment = cp.http.post(
        "/api/v1/deployments", json={"model": "det", "version": "1.0.0", "fleet": "lab"}
    )
    assert deployment.status_code == 201 and deployment.json()["targets"] == []

    cp.report("dev-new", "lab", generation=4)  # e.g. the agent kept a generation from before
    wait_until(lambda: bool(cp.desired("dev-new")), 10, "desired state for the new device")
    state = cp.desired("dev-new")[-1]
    assert state.generation == 5  # above anything the agent already accepted
    assert state.models[0].deployment_id == deployment.json()["id"]
    targets = cp.http.get(f"/api/v1/deployments/{deployment.json()['id']}").json()["targets"]
    assert [(t["device_id"], t["status"]) for t in targets] == [("dev-new", "pending")]


def test_malformed_and_forged_payloads_do_not_break_ingestion(cp: ControlPlane) -> None:
    # not sealed by an enrolled device: dropped as unauthenticated, whatever they hold
    cp.mqtt.publish(device_topic("dev-x", TopicKind.STATE), b"{not json")
    cp.mqtt.publish(device_topic("dev-x", TopicKind.HEARTBEAT), b'{"device_id": "dev-x"}')
    forged = StateReport(
        device_id="someone-else",
        fleet="f",
        agent_version="t",
        status=DeviceStatus.IDLE,
        generation=0,
    )
    cp.mqtt.publish(device_topic("dev-x", TopicKind.STATE), encode(forged))
    # sealed by an enrolled device, but not a report, or one naming another device
    cp.send("dev-ok", TopicKind.STATE, b"{not json", retain=False)
    cp.send("dev-ok", TopicKind.STATE, encode(forged), retain=False)
    cp.report("dev-ok", "f")
    wait_until(
        lambda: (cp.device("dev-ok") or {}).get("last_report_at") is not None,
        10,
        "dev-ok's report applied after the garbage",
    )
    status = cp.http.get("/api/v1/status").json()
    assert status["connected"] is True
    assert status["unauthenticated"] >= 3
    assert status["malformed"] >= 1 and status["rejected"] >= 1
    assert cp.device("dev-x") is None and cp.device("someone-else") is None

    heartbeat = Heartbeat(
        device_id="dev-ok",
        cpu_percent=12.5,
        rss_bytes=1000,
        mem_total_bytes=8000,
        mem_available_bytes=4000,
        mem_percent=50.0,
        load_avg=(0.1, 0.2, 0.3),
        uptime_s=42.0,
    )
    cp.send("dev-ok", TopicKind.HEARTBEAT, encode(heartbeat), retain=False)
    wait_until(
        lambda: (cp.device("dev-ok") or {}).get("last_heartbeat") is not None, 10, "heartbeat"
    )
    assert cp.device("dev-ok")["last_heartbeat"]["cpu_percent"] == 12.5  # type: ignore[index]

    offline = b'{"device_id": "dev-ok", "online": false}'
    cp.send("dev-ok", TopicKind.AVAILABILITY, offline, retain=True)
    wait_until(lambda: (cp.device("dev-ok") or {}).get("online") is False, 10, "dev-ok offline")


def test_get_one_fleet(cp: ControlPlane) -> None:
    """``edgectl`` asks for the fleet before it uploads a bundle."""
    missing = cp.http.get("/api/v1/fleets/store-eu")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "unknown fleet 'store-eu'"}
    assert cp.http.post("/api/v1/fleets", json={"name": "store-eu"}).status_code == 201
    fleet = cp.http.get("/api/v1/fleets/store-eu")
    assert fleet.status_code == 200
    assert fleet.json() == {
        "name": "store-eu",
        "created_at": fleet.json()["created_at"],
        "device_count": 0,
        "pinned_backend": None,
        "model_pins": {},
    }
    cp.report("dev-1", "store-eu")
    wait_until(
        lambda: cp.http.get("/api/v1/fleets/store-eu").json()["device_count"] == 1, 10, "count"
    )
    invalid = cp.http.get("/api/v1/fleets/bad name")
    assert invalid.status_code == 422 and "path.name" in invalid.json()["detail"]
