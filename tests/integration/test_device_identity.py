"""Device identity end to end, with real processes: an operator enrolls a device with
``edgectl``, the device redeems the one-time token with ``edge-agent enroll`` (its key
pair is made on the device and never leaves it), ``edge-agent run`` seals every report,
the certificate renews itself before it expires, and ``edgectl devices revoke`` cuts the
device off. The broker here is an open Mosquitto: authentication must not depend on it,
so a rogue client on it forges and replays reports, and none is believed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from agent.identity.files import IdentityFiles
from edgectl.cli import main as edgectl
from model_store import generate_private_key
from model_store.report_seal import seal_report
from protocol import DeviceStatus, StateReport, TopicKind, device_topic, encode
from tests.support.agent_process import AgentProcess, write_config
from tests.support.controlplane import ControlPlaneProcess, run_controlplane
from tests.support.mosquitto import Broker
from tests.support.mqtt_plane import MqttPeer
from tests.support.ports import free_port, wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

DEVICE = "cam-007"
FLEET = "lab"
#: The shortest certificate lifetime the control plane allows: renewal at half of it.
CERT_TTL_S = 60


def _agent_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120
    )


def _device(cp: ControlPlaneProcess) -> dict[str, Any]:
    response = httpx.get(f"{cp.url}/api/v1/devices/{DEVICE}", headers=cp.headers, timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _status(cp: ControlPlaneProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{cp.url}/api/v1/status", headers=cp.headers, timeout=5).json())


def test_enroll_run_renew_and_revoke_a_real_device(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"EDGEFLEET_DEVICE_CERT_TTL": str(CERT_TTL_S)}
    with run_controlplane(
        tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, env=env
    ) as cp:
        base = ["--url", cp.url, "--token", cp.token]
        assert edgectl([*base, "devices", "enroll", DEVICE, "--fleet", FLEET, "--ttl", "10m"]) == 0
        token = capsys.readouterr().out.strip()
        assert token.startswith("efe_")
        data = tmp_path / "device"
        config = write_config(
            tmp_path / "agent.toml",
            {
                "device_id": DEVICE,
                "fleet": FLEET,
                "broker_url": mosquitto.url,
                "control_plane_url": cp.url,
                "data_dir": str(data),
                "root_keys": [str(trust_kit.root_pub)],
                "local_api": f"127.0.0.1:{free_port()}",
                "heartbeat_interval_s": 0.5,
            },
        )
        enrolled = _agent_cli("enroll", "--config", str(config), "--token", token)
        assert enrolled.returncode == 0, enrolled.stderr
        key_file = data / "identity" / "device.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        # its report key came encrypted to that key; stored as privately
        report_key = data / "identity" / "report.key"
        assert report_key.stat().st_mode & 0o777 == 0o600
        mac_kid = IdentityFiles(data / "identity").load().report_key.kid  # type: ignore[union-attr]
        assert _device(cp)["fleet"] == FLEET  # registered by enrollment, in the token's fleet
        again = _agent_cli("enroll", "--config", str(config), "--token", token, "--force")
        last = again.stderr.strip().splitlines()[-1]
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert last.startswith("edge-agent: ") and "unknown, already used or expired" in last
        first_cert = x509.load_pem_x509_certificate((data / "identity" / "device.crt").read_bytes())

        rogue = MqttPeer(mosquitto.port, "rogue")  # any client on the open broker
        rogue.subscribe("edgefleet/v1/devices/#")
        agent = AgentProcess(config, tmp_path / "agent.log").start()
        try:
            wait_until(
                lambda: _device(cp)["online"] and _device(cp)["last_heartbeat"], 60, "reports"
            )
            assert _device(cp)["status"] == DeviceStatus.IDLE.value
            beat_topic = device_topic(DEVICE, TopicKind.HEARTBEAT)
            wait_until(lambda: rogue.received(beat_topic), 10, "a heartbeat to capture")
            sealed = json.loads(rogue.received(beat_topic)[0])
            assert [s["keyid"] for s in sealed["signatures"]] == [mac_kid]  # MACed, not signed
            before = _status(cp)
            forged = StateReport(
                device_id=DEVICE,
                fleet="evil",
                agent_version="x",
                status=DeviceStatus.FAILED,
                generation=0,
                last_error="made up",
            )
            state_topic = device_topic(DEVICE, TopicKind.STATE)
            rogue.publish(state_topic, encode(forged))  # plain, as before enrollment existed
            own = generate_private_key()  # sealed, but by a key the device never enrolled
            rogue.publish(
                state_topic,
                seal_report(own, device_id=DEVICE, stream="state", seq=10**9, body=encode(forged)),
            )
            rogue.publish(beat_topic, rogue.received(beat_topic)[0])  # a real one, replayed
            wait_until(
                lambda: (
                    _status(cp)["unauthenticated"] >= before["unauthenticated"] + 2
                    and _status(cp)["replayed"] >= before["replayed"] + 1
                ),
                10,
                "the forgeries counted",
            )
            device = _device(cp)
            assert device["fleet"] == FLEET and device["status"] == DeviceStatus.IDLE.value
            assert device["last_error"] is None

            # renewal at half the lifetime, well before expiry; reports still believed
            def renewed() -> bool:
                pem = (data / "identity" / "device.crt").read_bytes()
                return x509.load_pem_x509_certificate(pem).serial_number != first_cert.serial_number

            wait_until(renewed, CERT_TTL_S, "the certificate to renew")
            seen = _device(cp)["last_heartbeat_at"]
            wait_until(
                lambda: _device(cp)["last_heartbeat_at"] != seen, 10, "reports after renewal"
            )

            assert edgectl([*base, "devices", "revoke", DEVICE]) == 0
            assert f"revoked {DEVICE}" in capsys.readouterr().out
            crl = x509.load_pem_x509_crl(
                httpx.get(f"{cp.url}/api/v1/device-ca/crl", timeout=5).content
            )
            renewed_cert = x509.load_pem_x509_certificate(
                (data / "identity" / "device.crt").read_bytes()
            )
            revoked = {r.serial_number for r in crl}
            assert {first_cert.serial_number, renewed_cert.serial_number} <= revoked
            count = _status(cp)["unauthenticated"]
            wait_until(lambda: _status(cp)["unauthenticated"] > count, 10, "its reports dropped")
            assert _device(cp)["online"] is False
        finally:
            agent.stop()
            rogue.close()
        assert "Traceback" not in agent.log_tail(400), agent.log_tail()
