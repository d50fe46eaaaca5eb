"""``edgectl alerts add|list|test|deliveries|remove`` against a real control plane process.

The control plane runs as a process whose own alert dispatcher wakes every 0.2 s; the
CLI runs in-process; a real HTTP receiver on a loopback port checks each signature with
the secret ``alerts add`` printed (or the one the operator gave in a file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgectl.cli import main
from tests.support.controlplane import ADMIN_TOKEN, ControlPlaneProcess, run_controlplane
from tests.support.mosquitto import Broker
from tests.support.trust import TrustKit
from tests.support.webhooks import webhook_receiver

pytestmark = pytest.mark.integration

FAST_ALERTS = {
    "EDGEFLEET_ALERT_TICK_S": "0.2",
    "EDGEFLEET_ALERT_BACKOFF_S": "0.2",
    "EDGEFLEET_ALERT_MAX_ATTEMPTS": "2",
    "EDGEFLEET_ALERT_TIMEOUT_S": "2",
}


@pytest.fixture
def cp(tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(
        tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, env=FAST_ALERTS
    ) as cp:
        yield cp


@pytest.fixture(autouse=True)
def edgectl_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cp: ControlPlaneProcess) -> None:
    for name in ("EDGECTL_TOKEN", "EDGECTL_ALERT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECTL_CONFIG", str(tmp_path / "edgectl.toml"))
    monkeypatch.setenv("EDGECTL_URL", cp.url)
    monkeypatch.setenv("EDGECTL_TOKEN", ADMIN_TOKEN)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def test_add_test_deliveries_list_remove(
    cp: ControlPlaneProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with webhook_receiver("unknown yet") as receiver:
        code, out, err = _run(
            capsys, "alerts", "add", receiver.url, "--events",
            "rollout.paused,device.offline", "--offline-after", "15m",
        )  # fmt: skip
        assert code == 0, err
        lines = out.strip().splitlines()
        assert lines[0] == f"webhook 1: {receiver.url}"
        assert lines[1] == "events: device.offline, rollout.paused (device.offline after 15m)"
        assert lines[2].startswith("secret: whsec_") and "shown only now" in lines[3]
        secret = lines[2].split(": ", 1)[1]
        receiver.secret = secret

        code, out, err = _run(capsys, "alerts", "test", "1")
        assert (code, err) == (0, "")
        assert out.strip() == "ping 1 delivered to webhook 1 (HTTP 200)"
        [ping] = receiver.received
        assert ping.verified and ping.event["type"] == "ping"
        assert ping.headers["x-edgefleet-event-id"] == ping.event["id"]

        listed = _json(capsys, "alerts", "list", "--json")
        assert [(w["id"], w["offline_after_s"], w["deliveries"]) for w in listed] == [
            (1, 900, {"pending": 0, "delivered": 1, "failed": 0})
        ]
        assert "secret" not in listed[0]
        code, out, _ = _run(capsys, "alerts", "list")
        assert code == 0 and secret not in out
        assert out.splitlines()[1].split()[:5] == [
            "1", receiver.url, "device.offline,rollout.paused", "15m", "0/1/0"
        ]  # fmt: skip

        receiver.statuses[:] = [500, 500]
        code, out, err = _run(capsys, "alerts", "test", "1")
        assert code == 1
        assert out.startswith("ping 2 attempt 1/2 failed: HTTP 500")
        assert err == "edgectl: error: ping 2 to webhook 1 was not delivered\n"

        deliveries = _json(capsys, "alerts", "deliveries", "1", "--json")
        assert [(d["id"], d["event_type"]) for d in deliveries] == [(2, "ping"), (1, "ping")]
        assert deliveries[1]["state"] == "delivered"
        code, out, _ = _run(capsys, "alerts", "deliveries", "--state", "delivered")
        assert code == 0 and len(out.strip().splitlines()) == 2  # header and delivery 1

        removed = _json(capsys, "alerts", "remove", "1", "--json")
        assert removed["id"] == 1 and "secret" not in removed
        code, out, _ = _run(capsys, "alerts", "list")
        assert out.startswith("no webhooks")
    assert secret not in cp.log.read_text()  # never logged


def test_secret_from_a_file_and_one_line_errors(
    cp: ControlPlaneProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = "operator-chosen-secret-0123456789"
    path = tmp_path / "hook.secret"
    path.write_text(secret + "\n")
    with webhook_receiver(secret) as receiver:
        code, out, err = _run(capsys, "alerts", "add", receiver.url, "--secret-file", str(path))
        assert code == 0, err
        assert secret not in out and f"signed with the secret from {path}" in out
        code, out, err = _run(capsys, "alerts", "test", "1", "--json")
        assert code == 0, out + err
        delivery = json.loads(out)
        assert delivery["state"] == "delivered" and receiver.received[0].verified

    code, _, err = _run(capsys, "alerts", "add", "http://x.test", "--events", "nope")
    assert code == 2 and err.count("\n") == 1 and "invalid --events 'nope'" in err
    code, _, err = _run(capsys, "alerts", "add", "gopher://x.test/")
    assert code == 1 and err.count("\n") == 1
    assert "only http:// and https:// URLs" in err
    code, _, err = _run(capsys, "alerts", "remove", "99")
    assert code == 1 and err.count("\n") == 1 and "no webhook 99" in err
    code, _, err = _run(capsys, "alerts", "deliveries", "99")
    assert code == 1 and "no webhook 99" in err
    assert secret not in cp.log.read_text()
