"""Issue 13.4: nothing a device spooled is lost uncounted, whatever the broker's
persistence setting.

The bad day of the issue, with real pieces: Mosquitto without persistence (its default),
a control plane process on SQLite, enrolled simulated agents (real ``Agent`` s, a
heartbeat every 0.1 s). The broker is stopped, the control plane killed with
``kill -9``, the broker started again (empty: no sessions, nothing queued), and the
agents reconnect before the control plane. What they send then reaches the broker,
which has nobody to give it to. The control plane comes back.

Before issue 13.4 the agents' spools counted the broker's PUBACK as delivered: those
reports were gone and counted nowhere. Now a report leaves a spool only on the control
plane's acknowledgement, so:

* every report spooled before the control plane came back is settled (acknowledged as
  stored or as lost) shortly after it did;
* per device, everything ever spooled is acked + lost + dropped + still pending (the
  spool's own persisted counters, read from its file);
* the control plane stored at least every report the devices count as acked, and at
  most those plus the few still awaiting their ack when the agents stopped;
* none had to be counted lost, though each device's backlog is longer than the control
  plane's replay window: it reaches the control plane oldest first.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.simulator import SimulatedFleet
from agent.simulator.enroll import api_enrollment
from model_store.report_seal import ReplayWindow
from tests.support.controlplane import ControlPlaneProcess, run_controlplane
from tests.support.outage import broker_on
from tests.support.ports import free_port, wait_until
from tests.support.trust import make_trust_kit

pytestmark = pytest.mark.integration

DEVICES = 3
BEAT_S = 0.1


@dataclass(frozen=True)
class SpoolFile:
    """A device's spool as its file says: what was ever appended, and where it went."""

    appended: int
    acked: int
    lost: int
    dropped: int
    pending: int
    oldest: float | None  # created_at of the oldest entry still spooled


def _spool(path: Path) -> SpoolFile:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        pending, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM spool").fetchone()
    finally:
        db.close()
    appended = int(row[0]) if row else 0
    return SpoolFile(appended, meta["acked"], meta["lost"], meta["dropped"], int(pending), oldest)


def _status(cp: ControlPlaneProcess) -> dict[str, Any]:
    response = httpx.get(f"{cp.url}/api/v1/status", headers=cp.headers, timeout=5)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


def _devices(cp: ControlPlaneProcess) -> list[dict[str, Any]]:
    response = httpx.get(f"{cp.url}/api/v1/devices", headers=cp.headers, timeout=5)
    assert response.status_code == 200, response.text
    devices: list[dict[str, Any]] = response.json()
    return devices


def _seen(cp: ControlPlaneProcess) -> set[str]:
    return {d["id"] for d in _devices(cp) if d.get("last_seen_at")}


def test_reports_the_broker_took_but_nobody_stored_are_sent_again(tmp_path: Path) -> None:
    kit = make_trust_kit(tmp_path / "trust")
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    spools = {}
    with ExitStack() as broker, ExitStack() as plane:
        broker.enter_context(broker_on(port, tmp_path / "mq", 0, persistence=False))
        cp = plane.enter_context(run_controlplane(tmp_path / "cp", mqtt_url=url, trust_kit=kit))
        fleet = SimulatedFleet(
            count=DEVICES,
            fleet="lab",
            broker_url=url,
            control_plane_url=cp.url,
            data_dir=tmp_path / "devices",
            root_keys=[kit.root_pub],
            trust_file=kit.trust_file,
            heartbeat_interval_s=BEAT_S,
            enrollment=api_enrollment(cp.url, cp.token, "lab"),
        )
        spools = {d: tmp_path / "devices" / d / "spool.sqlite" for d in fleet.device_ids}
        with fleet:
            wait_until(lambda: _seen(cp) >= set(spools), 60, "devices reporting")
            wait_until(
                lambda: all(_spool(p).acked > 0 for p in spools.values()), 30, "acks arriving"
            )
            # the bad day: broker stopped, control plane killed, broker back empty, the
            # agents reconnect first and hand their spools to a broker nobody listens to
            broker.close()
            time.sleep(1.0)  # the control plane stores what it already has
            before = _status(cp)
            cp.process.kill()
            plane.close()
            time.sleep(2.0)
            broker.enter_context(broker_on(port, tmp_path / "mq", 1, persistence=False))
            assert fleet.wait_connected(15), "agents did not reconnect"
            # a backlog longer than the replay window: it must reach the control plane
            # oldest first, or its oldest reports would be counted lost
            backlog = ReplayWindow.WIDTH + 10
            wait_until(
                lambda: all(_spool(p).pending > backlog for p in spools.values()),
                60,
                f"{backlog} reports spooled per device",
            )
            taken = {d: _spool(p) for d, p in spools.items()}  # kept, not "delivered"

            back = time.time()
            cp = plane.enter_context(
                run_controlplane(tmp_path / "cp", mqtt_url=url, trust_kit=kit, port=cp.port)
            )
            # everything spooled before the control plane came back is settled
            wait_until(
                lambda: all((_spool(p).oldest or back) >= back for p in spools.values()),
                60,
                "every spooled report acknowledged",
                0.25,
            )
            # the devices say so themselves: their heartbeats carry the spool's counters
            wait_until(
                lambda: all(
                    (d.get("last_heartbeat") or {}).get("spool_acked", 0) > taken[d["id"]].acked
                    for d in _devices(cp)
                ),
                30,
                "heartbeats with the acked count",
            )
        after = _status(cp)

    final = {d: _spool(p) for d, p in spools.items()}
    print(f"status before the kill: {before}\nafter: {after}\nspools: {final}")
    for device, s in final.items():
        assert s.appended == s.acked + s.lost + s.dropped + s.pending, (device, s)
        assert s.dropped == 0, (device, s)
    stored = before["spooled_stored"] + after["spooled_stored"]
    acked = sum(s.acked for s in final.values())
    pending = sum(s.pending for s in final.values())
    assert acked <= stored <= acked + pending, (acked, stored, pending)
    # nothing had to be counted lost: the backlog went oldest first, within the window
    assert sum(s.lost for s in final.values()) == 0
    assert before["spooled_lost"] == after["spooled_lost"] == 0
    assert before["dropped"] == after["dropped"] == 0
