"""The walking skeleton end to end, with a real component at every seam.

Mosquitto of the test's own on a free loopback port, the control plane as a uvicorn
subprocess (SQLite and PostgreSQL), three simulated devices running the real agent code,
bundles really built and signed through the ``edgectl`` code path, inference over real
HTTP compared with a direct ONNX Runtime run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import paho.mqtt.client as mqtt
import pytest

import protocol as p
from agent.simulator import SimulatedFleet
from agent.simulator.enroll import api_enrollment
from edgectl.cli import main as edgectl
from edgectl.client import ControlPlaneClient
from edgectl.errors import ServerError
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    load_private_key,
    load_public_key,
    sha256_file,
    sign_bundle,
    sign_envelope,
    verify_signature,
    write_keypair,
)
from tests.support.controlplane import (
    ControlPlaneProcess,
    auth_headers,
    reported_devices,
    run_controlplane,
)
from tests.support.deploy import assert_close_to_reference
from tests.support.identity import report_of
from tests.support.mosquitto import Broker
from tests.support.mqtt_plane import MqttPeer
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

FLEET = "store-eu"
DEVICES = 3


def _devices(url: str) -> dict[str, dict[str, Any]]:
    return {
        d["id"]: d
        for d in httpx.get(f"{url}/api/v1/devices", headers=auth_headers(), timeout=5).json()
    }


def _all_run(url: str, version: str) -> bool:
    devices = _devices(url)
    return len(devices) == DEVICES and all(
        d["active_version"] == version and d["status"] == "active" and d["local_api"]
        for d in devices.values()
    )


def _infer(local_api: str, model: str, x: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()},
            {"name": "ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.tolist()},
        ]
    }
    response = httpx.post(f"{local_api}/v2/models/{model}/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    out = {}
    for tensor in response.json()["outputs"]:
        dtype = {"FP32": np.float32, "INT64": np.int64}[tensor["datatype"]]
        out[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    return out


def _assert_serves(url: str, model_path: Path, name: str) -> None:
    session = ort.InferenceSession(str(model_path))
    rng = np.random.default_rng(1)
    for batch in (1, 3, 5):  # the batch dimension is dynamic
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        ids = rng.integers(-1000, 1000, size=batch, dtype=np.int64)
        expected = dict(zip(["y", "n"], session.run(None, {"x": x, "ids": ids}), strict=True))
        for device in _devices(url).values():
            got = _infer(device["local_api"], name, x, ids)
            # exact from an fp32 backend; measured selection may pick bf16 (accuracy guard)
            assert_close_to_reference(got, expected, device["backend"])
            assert got["n"].dtype == np.int64


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ef-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(
    mosquitto: Broker, database_url: str, short_tmp: Path, trust_kit: TrustKit
) -> Iterator[tuple[ControlPlaneProcess, SimulatedFleet, TrustKit]]:
    with run_controlplane(
        short_tmp / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, database_url=database_url
    ) as cp:
        fleet = SimulatedFleet(
            count=DEVICES,
            fleet=FLEET,
            broker_url=mosquitto.url,
            control_plane_url=cp.url,
            data_dir=short_tmp / "devices",
            root_keys=[trust_kit.root_pub],
            heartbeat_interval_s=1.0,
            enrollment=api_enrollment(cp.url, cp.token, FLEET),
        )
        with fleet:
            wait_until(lambda: len(reported_devices(cp)) == DEVICES, 30, "devices to register")
            yield cp, fleet, trust_kit


def _push(cp: ControlPlaneProcess, model: Path, version: str, key: Path) -> int:
    return edgectl(
        [
            "--url",
            cp.url,
            "--token",
            cp.token,
            "push",
            "model",
            str(model),
            "--name",
            "det",
            "--version",
            version,
            "--fleet",
            FLEET,
            "--key",
            str(key),
            "--no-gate",  # no traffic here: the health gate would wait for some
            "--timeout",
            "2m",
        ]
    )


def _publish_retained(broker: Broker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-attacker")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def test_signed_push_reaches_every_device_and_tampering_is_refused(
    stack: tuple[ControlPlaneProcess, SimulatedFleet, TrustKit],
    mosquitto: Broker,
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cp, fleet, kit = stack
    key = kit.release_key
    v1 = two_input_model(short_tmp / "v1" / "det.onnx", weight=0.5)
    assert _push(cp, v1, "1.0.0", key) == 0
    wait_until(lambda: _all_run(cp.url, "1.0.0"), 60, "all devices to run 1.0.0")
    _assert_serves(cp.url, v1, "det")
    for device in _devices(cp.url).values():
        assert device["online"] and device["last_report_at"] is not None
        # the backend the device measured fastest, with every candidate's figures in the API
        selection = device["selections"]["det"]
        assert device["backend"] == selection["chosen"] and not selection["pinned"]
        figures = {c["key"]: c for c in selection["candidates"]}
        assert "onnxruntime:CPUExecutionProvider:f32" in figures and len(figures) >= 2
        assert all(c["p50_ms"] is not None or c["excluded"] for c in figures.values())
    wait_until(
        lambda: all(d["last_heartbeat"] for d in _devices(cp.url).values()),
        20,
        "heartbeats with psutil figures",
    )

    v2 = two_input_model(short_tmp / "v2" / "det.onnx", weight=1.5)
    assert _push(cp, v2, "2.0.0", key) == 0
    wait_until(lambda: _all_run(cp.url, "2.0.0"), 60, "all devices to run 2.0.0")
    _assert_serves(cp.url, v2, "det")

    # A tampered bundle: one byte flipped after signing. The control plane refuses it...
    bundle = short_tmp / "tampered"
    build_bundle(
        two_input_model(short_tmp / "v3" / "det.onnx", weight=3.0),
        bundle,
        name="det",
        version="3.0.0",
    )
    sig = sign_bundle(bundle, load_private_key(key))
    model_file = bundle / "det.onnx"
    raw = bytearray(model_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    model_file.write_bytes(bytes(raw))
    files = [p.FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(bundle)]
    sig_ref = p.FileRef(path=SIGNATURE_FILENAME, sha256=sha256_file(sig), size=sig.stat().st_size)
    with ControlPlaneClient(cp.url, token=cp.token) as client:
        for ref in [*files, sig_ref]:
            client.upload_blob(bundle / ref.path, ref.sha256)
        with pytest.raises(ServerError) as refused:
            client.create_version("det", "3.0.0", sig_ref, files)
    assert 400 <= refused.value.status_code < 500
    assert "\n" not in str(refused.value)

    # ...and a device refuses those bytes even when the command pointing at them is
    # validly signed: a compromised control plane, holding its own signing key.
    signed = verify_signature(sig.read_bytes(), [load_public_key(kit.release_pub)])
    target = fleet.device_ids[0]

    def command(generation: int) -> p.DesiredState:
        return p.DesiredState(
            device_id=target,
            generation=generation,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            trust_version=1,
            models=[
                p.ModelAssignment(
                    deployment_id=424242,
                    name="det",
                    version="3.0.0",
                    bundle_digest=signed.bundle_digest,
                    size=sig_ref.size + sum(f.size for f in files),
                    signature=sig_ref,
                    files=files,
                )
            ],
        )

    def publish(desired: p.DesiredState, signer: Path) -> None:
        envelope = sign_envelope(
            p.encode(desired), p.DESIRED_STATE_PAYLOAD_TYPE, [load_private_key(signer)]
        )
        _publish_retained(
            mosquitto, p.device_topic(target, p.TopicKind.DESIRED), p.encode(envelope)
        )

    # A broker-level attacker cannot sign commands at all: refused, nothing changes.
    rogue, _ = write_keypair(short_tmp / "rogue", "release")
    generation = _devices(cp.url)[target]["reported_generation"]
    # the refusal is read off the device's own state reports: the control plane puts its
    # command back at once, and may store the device's next report (the error cleared)
    # in the same batch as the one that carried it
    states = MqttPeer(mosquitto.port, "e2e-states")
    state_topic = p.device_topic(target, p.TopicKind.STATE)
    states.subscribe(state_topic)

    def refused_rogue() -> bool:
        seen = [report_of(p.StateReport, raw) for raw in states.received(state_topic)]
        return any("refused deployment command" in (s.last_error or "") for s in seen)

    try:
        publish(command(generation + 1), rogue)
        wait_until(refused_rogue, 30, "the device to report the unsigned command")
    finally:
        states.close()
    assert _devices(cp.url)[target]["reported_generation"] == generation
    # the device's own deployment events say what it did with the command (its last_error
    # may move on: the control plane puts its real command back on the retained topic)
    events = MqttPeer(mosquitto.port, "e2e-events")
    events_topic = p.device_topic(target, p.TopicKind.EVENTS)
    events.subscribe(events_topic)

    def refused_v3() -> bool:
        seen = [report_of(p.DeploymentEvent, raw) for raw in events.received(events_topic)]
        return any(e.model_version == "3.0.0" and e.kind == p.EventKind.FAILED for e in seen)

    try:
        publish(command(generation + 1), kit.cp_key)
        wait_until(
            lambda: _devices(cp.url)[target]["reported_generation"] == generation + 1,
            30,
            "the device to process the signed command",
        )
        wait_until(refused_v3, 30, "the device to refuse 3.0.0's tampered bytes")
    finally:
        events.close()
    assert _all_run(cp.url, "2.0.0")
    _assert_serves(cp.url, v2, "det")

    # Through the CLI: a bundle signed by a key the control plane does not trust.
    capsys.readouterr()
    assert _push(cp, v1, "9.9.9", rogue) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgectl: error:") and "\n" not in err and "untrusted key" in err
    assert _all_run(cp.url, "2.0.0")
