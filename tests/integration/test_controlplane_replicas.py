"""Two control-plane processes on one Mosquitto: default client ids must not collide."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.settings import default_client_id
from tests.support.controlplane import ControlPlaneProcess, run_controlplane
from tests.support.mosquitto import Broker, run_mosquitto
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto whose log this test can read (see ``log``).

    "user root" matters only when the tests run as root: Mosquitto would otherwise switch
    to the mosquitto user, which cannot write its log under the test's tmp dir.
    """
    with run_mosquitto(tmp_path / "mq", extra_config="user root\n") as broker:
        yield broker


def log(broker: Broker) -> str:
    assert broker.log.is_file(), "Mosquitto wrote no log"
    return broker.log.read_text()


def _connected(cp: ControlPlaneProcess) -> bool:
    return bool(
        httpx.get(f"{cp.url}/api/v1/status", headers=cp.headers, timeout=5).json()["connected"]
    )


def test_two_control_planes_with_default_client_ids_both_stay_connected(
    tmp_path: Path, broker: Broker, trust_kit: TrustKit
) -> None:
    with (
        run_controlplane(tmp_path / "a", mqtt_url=broker.url, trust_kit=trust_kit) as a,
        run_controlplane(tmp_path / "b", mqtt_url=broker.url, trust_kit=trust_kit) as b,
    ):
        wait_until(lambda: _connected(a) and _connected(b), 15, "both bridges connected")
        deadline = time.monotonic() + 5  # a collision would flap within a second or two
        while time.monotonic() < deadline:
            assert _connected(a) and _connected(b)
            time.sleep(0.25)
        for cp in (a, b):
            assert "MQTT connection lost" not in cp.log.read_text()
    broker_log = log(broker)
    assert "already connected" not in broker_log, broker_log
    expected = {default_client_id(a.port), default_client_id(b.port)}
    assert len(expected) == 2
    assert set(re.findall(r" as (edgefleet-cp-\S+) ", broker_log)) == expected, broker_log


def test_a_client_id_taken_by_another_process_is_named_in_a_warning(
    tmp_path: Path, broker: Broker, trust_kit: TrustKit
) -> None:
    same = {"EDGEFLEET_MQTT_CLIENT_ID": "cp-shared"}
    with (
        run_controlplane(tmp_path / "a", mqtt_url=broker.url, trust_kit=trust_kit, env=same) as a,
        run_controlplane(tmp_path / "b", mqtt_url=broker.url, trust_kit=trust_kit, env=same) as b,
    ):

        def warned() -> bool:
            return any(
                "EDGEFLEET_MQTT_CLIENT_ID" in cp.log.read_text()
                and "'cp-shared'" in cp.log.read_text()
                for cp in (a, b)
            )

        wait_until(warned, 30, "a warning naming EDGEFLEET_MQTT_CLIENT_ID")
    assert "already connected" in log(broker)  # the broker did kick one off
