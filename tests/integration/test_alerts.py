"""Alert webhooks end to end in one process, on SQLite and on PostgreSQL.

The real app (``tests.support.rollout_plane``) drives real rollouts of simulated devices;
a real HTTP receiver on a loopback port (``tests.support.webhooks``) checks every
signature as the docs tell a receiver to. The app's own dispatcher thread is told to
sleep (``EDGEFLEET_ALERT_TICK_S``); each test wakes a dispatcher on the app's database by
hand (``Dispatcher.run_once``), with short retry settings, as the app's would every tick.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.alerts.dispatch import Dispatcher
from controlplane.alerts.sender import RetryPolicy
from controlplane.models import utcnow
from controlplane.publisher import MemoryPublisher
from protocol import Availability, TopicKind
from tests.support.dashboard_client import html_of, make_token, signed_in, text_of
from tests.support.ports import free_port
from tests.support.rollout_plane import Plane, open_plane
from tests.support.trust import TrustKit
from tests.support.webhooks import Receiver, webhook_receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_test-secret-0123456789abcdef"


@pytest.fixture
def plane(
    tmp_path: Path, trust_kit: TrustKit, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Plane]:
    monkeypatch.setenv("EDGEFLEET_ALERT_TICK_S", "3600")  # the test wakes its dispatcher
    with open_plane(tmp_path, trust_kit, database_url, MemoryPublisher()) as plane:
        yield plane


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as receiver:
        yield receiver


def _dispatcher(
    plane: Plane, *, max_attempts: int = 5, backoff_s: float = 0.2, replica: str = "alerts-test"
) -> Dispatcher:
    retry = RetryPolicy(backoff_s=backoff_s, cap_s=1.0, max_attempts=max_attempts, timeout_s=2.0)
    return Dispatcher(plane.engine, replica=replica, retry=retry, interval_s=0.1)


def _hook(plane: Plane, url: str, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = plane.post(
        "/alerts/webhooks", {"url": url, "secret": SECRET} | body, 201
    )
    return created


def _deliveries(plane: Plane, **params: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    found: list[dict[str, Any]] = plane.get(f"/alerts/deliveries?{query}")
    return found


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _all_verified(receiver: Receiver) -> None:
    for got in receiver.received:
        assert got.verified, got.headers
        assert got.headers["x-edgefleet-event-id"] == got.event["id"]
        assert got.headers["x-edgefleet-event"] == got.event["type"]


def test_an_abort_and_its_failed_devices_are_delivered_once_each(
    plane: Plane, receiver: Receiver
) -> None:
    hook = _hook(plane, receiver.url)
    assert "secret" in hook and plane.get("/alerts/webhooks")[0].get("secret") is None
    plane.fleet_on_v1(5)
    rollout = plane.start({"canary": 3, "batches": 1, "max_failures_pct": 20, "min_finished": 2})
    plane.healthy_v2("d00")
    plane.obey("d01", fail="verify failed: digest mismatch")
    plane.obey("d02", fail="activation failed: out of memory")
    plane.tick()
    assert plane.rollout(rollout["id"])["state"] == "aborted"
    dispatcher = _dispatcher(plane)
    tick = dispatcher.run_once()
    assert tick is not None and tick.fanned_out == 3 and tick.attempted == 3
    dispatcher.run_once()  # nothing is sent twice
    assert Counter(e["type"] for e in receiver.events()) == {
        "device.failed": 2,
        "rollout.aborted": 1,
    }
    _all_verified(receiver)
    aborted = receiver.events("rollout.aborted")[0]["data"]
    assert aborted["rollout"] | {"reason": None} == {
        "id": rollout["id"],
        "model": "det",
        "version": "2.0.0",
        "fleet": "f",
        "state": "aborted",
        "reason": None,
        "previous_version": "1.0.0",
        "selector": {},
        "rollback_of": None,
    }
    assert aborted["rollout"]["reason"].startswith("failure threshold: 2 of 3")
    assert aborted["dashboard"] == f"/dashboard/rollouts/{rollout['id']}"
    failed = {e["data"]["device"]["id"]: e["data"] for e in receiver.events("device.failed")}
    assert set(failed) == {"d01", "d02"}
    assert failed["d01"]["reason"] == "verify failed: digest mismatch"
    assert failed["d01"]["rollout"]["id"] == rollout["id"]
    assert failed["d01"]["device"] | {"id": "d01"} == {
        "id": "d01", "fleet": "f", "model": "det", "version": "2.0.0"
    }  # fmt: skip
    assert failed["d01"]["dashboard"] == "/dashboard/devices/d01"
    shown = _deliveries(plane, webhook_id=hook["id"])
    assert [(d["state"], d["attempts"], d["last_status"]) for d in shown] == [
        ("delivered", 1, 200)
    ] * 3


def test_a_gate_pause_a_regressed_device_and_a_completion(plane: Plane, receiver: Receiver) -> None:
    _hook(plane, receiver.url, events=["rollout.paused", "rollout.completed", "device.regressed"])
    ids = plane.fleet_on_v1(2)
    rollout = plane.start(
        {"canary": 1, "batches": 1, "gate": {"action": "pause", "latency_pct": 25}}
    )
    plane.healthy_v2("d00", p95=31.0)
    plane.tick(2)
    assert plane.rollout(rollout["id"])["state"] == "paused"
    dispatcher = _dispatcher(plane)
    dispatcher.run_once()
    assert [e["type"] for e in receiver.events()] == ["device.regressed", "rollout.paused"]
    regressed = receiver.events("device.regressed")[0]["data"]
    assert regressed["device"]["id"] == "d00" and "p95 31.0 ms" in regressed["reason"]
    paused = receiver.events("rollout.paused")[0]["data"]["rollout"]
    assert paused["reason"].startswith("latency gate: d00")
    plane.post(f"/rollouts/{rollout['id']}/resume", {"reason": "known slow box"})
    plane.tick(2)
    plane.healthy_v2(ids[1])
    plane.tick(3)
    assert plane.rollout(rollout["id"])["state"] == "completed"
    dispatcher.run_once()
    dispatcher.run_once()
    assert [e["type"] for e in receiver.events()] == [
        "device.regressed",
        "rollout.paused",
        "rollout.completed",
    ]
    _all_verified(receiver)
    assert len({e["id"] for e in receiver.events()}) == 3


def test_an_operator_pause_and_a_plain_deployment_failure(plane: Plane, receiver: Receiver) -> None:
    _hook(plane, receiver.url, events=["rollout.paused", "device.failed"])
    plane.fleet_on_v1(2)
    rollout = plane.start({"canary": 1, "batches": 1})
    plane.post(f"/rollouts/{rollout['id']}/pause", {"reason": "change freeze"})
    plane.post(f"/rollouts/{rollout['id']}/abort", {"reason": "not today"})  # not subscribed
    plane.post("/deployments", {"model": "det", "version": "3.0.0", "fleet": "f"}, 201)
    plane.obey("d01", fail="download failed: 404")
    dispatcher = _dispatcher(plane)
    dispatcher.run_once()
    assert [e["type"] for e in receiver.events()] == ["rollout.paused", "device.failed"]
    assert receiver.events("rollout.paused")[0]["data"]["rollout"]["reason"] == "change freeze"
    failed = receiver.events("device.failed")[0]["data"]
    assert failed["device"] | {"fleet": "f"} == {
        "id": "d01", "fleet": "f", "model": "det", "version": "3.0.0"
    }  # fmt: skip
    assert failed["reason"] == "download failed: 404" and "rollout" not in failed
    _all_verified(receiver)


def test_offline_longer_than_n_alerts_once_per_outage(plane: Plane, receiver: Receiver) -> None:
    hook = _hook(plane, receiver.url, events=["device.offline"], offline_after_s=60)
    plane.fleet_on_v1(2)
    plane.send("d00", TopicKind.AVAILABILITY, Availability(device_id="d00", online=False))
    dispatcher = _dispatcher(plane)
    dispatcher.run_once(utcnow() + timedelta(seconds=30))  # not yet
    assert receiver.events() == []
    later = utcnow() + timedelta(seconds=90)
    dispatcher.run_once(later)
    dispatcher.run_once(later + timedelta(seconds=5))  # the same outage: not again
    dispatcher.run_once(later + timedelta(seconds=600))
    offline = receiver.events("device.offline")
    assert [e["data"]["device"]["id"] for e in offline] == ["d00"]
    assert offline[0]["data"]["device"]["offline_for_s"] >= 60
    assert offline[0]["data"]["device"]["version"] == "1.0.0"
    # back online, then away again: a new outage, a new alert
    plane.send("d00", TopicKind.AVAILABILITY, Availability(device_id="d00", online=True))
    plane.send("d00", TopicKind.AVAILABILITY, Availability(device_id="d00", online=False))
    dispatcher.run_once(utcnow() + timedelta(seconds=90))
    assert [e["data"]["device"]["id"] for e in receiver.events()] == ["d00", "d00"]
    _all_verified(receiver)
    assert [d["event_type"] for d in _deliveries(plane, webhook_id=hook["id"])] == [
        "device.offline"
    ] * 2


def test_a_500_is_retried_with_backoff_then_delivered(plane: Plane, receiver: Receiver) -> None:
    """Each wake-up is given its time: the backoff is judged on the dispatcher's clock,
    never on how fast this box runs the test."""
    receiver.statuses[:] = [500, 503]
    hook = _hook(plane, receiver.url)
    ping = plane.post(f"/alerts/webhooks/{hook['id']}/test", None, 202)
    assert (ping["state"], ping["attempts"], ping["event_type"]) == ("pending", 0, "ping")
    dispatcher = _dispatcher(plane, backoff_s=0.3)
    dispatcher.run_once(utcnow())
    first = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (first["state"], first["attempts"], first["last_status"]) == ("pending", 1, 500)
    assert first["last_error"].startswith("HTTP 500")
    due = _at(first["next_attempt_at"])
    assert due - _at(first["last_attempt_at"]) == timedelta(seconds=0.3)  # the first backoff
    dispatcher.run_once(due - timedelta(seconds=0.05))  # not due yet: the backoff holds it
    assert len(receiver.received) == 1
    dispatcher.run_once(due)
    second = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (second["state"], second["attempts"], second["last_status"]) == ("pending", 2, 503)
    due = _at(second["next_attempt_at"])
    assert due - _at(second["last_attempt_at"]) == timedelta(seconds=0.6)  # doubled
    dispatcher.run_once(due)
    done = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (done["state"], done["attempts"], done["last_status"]) == ("delivered", 3, 200)
    assert len(receiver.received) == 3
    assert len({r.headers["x-edgefleet-event-id"] for r in receiver.received}) == 1
    _all_verified(receiver)


def test_a_receiver_that_stays_down_fails_after_the_last_attempt(plane: Plane) -> None:
    down = f"http://127.0.0.1:{free_port()}/nobody-listens"
    hook = _hook(plane, down)
    ping = plane.post(f"/alerts/webhooks/{hook['id']}/test", None, 202)
    dispatcher = _dispatcher(plane, max_attempts=3, backoff_s=0.05)
    for _ in range(60):
        dispatcher.run_once()
        if plane.get(f"/alerts/deliveries/{ping['id']}")["state"] != "pending":
            break
        time.sleep(0.05)
    failed = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (failed["state"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 3, None)
    assert failed["last_status"] is None and "ConnectError" in failed["last_error"]
    assert plane.get(f"/alerts/webhooks/{hook['id']}")["deliveries"] == {
        "pending": 0, "delivered": 0, "failed": 1
    }  # fmt: skip


def test_a_redirect_is_not_followed(plane: Plane, receiver: Receiver) -> None:
    receiver.statuses[:] = [302]
    hook = _hook(plane, receiver.url)
    ping = plane.post(f"/alerts/webhooks/{hook['id']}/test", None, 202)
    _dispatcher(plane, max_attempts=1).run_once()
    failed = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (failed["state"], failed["last_status"]) == ("failed", 302)
    assert "redirect to" in failed["last_error"] and "not followed" in failed["last_error"]
    assert len(receiver.received) == 1


def test_webhooks_are_validated_and_for_operators(plane: Plane) -> None:
    for body, message in [
        ({"url": "ftp://example.com/x"}, "only http:// and https://"),
        ({"url": "http://example.com/x", "events": ["rollout.exploded"]}, "events.0: Input"),
        ({"url": "http://example.com/x", "events": []}, "events: List should have at least"),
        ({"url": "http://example.com/x", "offline_after_s": 1}, "offline_after_s"),
        ({"url": "http://example.com/x", "secret": "short"}, "secret"),
    ]:
        response = plane.http.post("/api/v1/alerts/webhooks", json=body)
        assert response.status_code == 422 and message in response.json()["detail"], body
    for url, message in [
        ("http://:8080/x", "url: not a usable URL: it names no host"),
        ("http://example.com:99999/x", "url: not a usable URL: Port out of range 0-65535"),
    ]:
        response = plane.http.post("/api/v1/alerts/webhooks", json={"url": url})
        assert (response.status_code, response.json()["detail"]) == (400, message)
    viewer = plane.post("/tokens", {"name": "dash", "role": "viewer"}, 201)["token"]
    response = plane.http.get(
        "/api/v1/alerts/webhooks", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert response.status_code == 403
    hook = _hook(plane, "https://example.com/hook")
    removed = plane.http.delete(f"/api/v1/alerts/webhooks/{hook['id']}")
    assert removed.status_code == 200 and removed.json()["url"] == "https://example.com/hook"
    assert plane.get("/alerts/webhooks") == []
    assert plane.http.delete(f"/api/v1/alerts/webhooks/{hook['id']}").status_code == 404


def test_pending_deliveries_survive_a_restart_and_one_replica_sends(
    tmp_path: Path,
    trust_kit: TrustKit,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
) -> None:
    monkeypatch.setenv("EDGEFLEET_ALERT_TICK_S", "3600")
    receiver.statuses[:] = [500]
    with open_plane(tmp_path / "a", trust_kit, database_url, MemoryPublisher()) as first:
        hook = _hook(first, receiver.url, events=["rollout.paused"])
        first.fleet_on_v1(1)
        rollout = first.start({"canary": 1, "batches": 1})
        first.post(f"/rollouts/{rollout['id']}/pause", {"reason": "before the restart"})
        _dispatcher(first).run_once()  # answered 500: pending, retried later
        [pending] = _deliveries(first, webhook_id=hook["id"])
        assert (pending["state"], pending["attempts"]) == ("pending", 1)
    with open_plane(
        tmp_path / "b", trust_kit, database_url, MemoryPublisher(), register=False
    ) as second:
        # two replicas on the same database
        replicas = [_dispatcher(second), _dispatcher(second, replica="another-replica")]
        for _ in range(30):
            ticks = [r.run_once() for r in replicas]
            assert ticks[1] is None  # the lease: one replica sends
            if _deliveries(second, webhook_id=hook["id"])[0]["state"] == "delivered":
                break
            time.sleep(0.1)
        [done] = _deliveries(second, webhook_id=hook["id"])
        assert (done["state"], done["attempts"], done["last_status"]) == ("delivered", 2, 200)
    assert [e["type"] for e in receiver.events()] == ["rollout.paused"] * 2
    assert len({e["id"] for e in receiver.events()}) == 1  # the same event, retried
    _all_verified(receiver)


def test_the_dashboard_shows_webhooks_and_deliveries_to_operators(
    plane: Plane, receiver: Receiver
) -> None:
    """``/dashboard/alerts``: each webhook without what may be a credential in its URL,
    and each delivery's state and attempts; a viewer is refused."""
    hook = _hook(plane, receiver.url + "?key=s3cr3t-in-query", description="on call")
    receiver.statuses[:] = [500]
    ping = plane.post(f"/alerts/webhooks/{hook['id']}/test", None, 202)
    _dispatcher(plane).run_once()
    operator = make_token(plane.http, "operator", name="ops")
    with signed_in(plane.http.base_url, operator) as browser:
        html = html_of(browser, "/dashboard/alerts")
    text = text_of(html)
    assert "s3cr3t-in-query" not in html and SECRET not in html
    assert f"{receiver.url}?…" in text and "on call" in text
    assert "0 delivered, 1 pending, 0 failed" in text
    deliveries = html.split("<h2>Deliveries</h2>", 1)[1]
    row = re.search(rf"<tr><td>{ping['id']}</td>.*?</tr>", deliveries)
    assert row is not None
    cells = text_of(row.group(0)).split(" ")
    most = plane.get(f"/alerts/deliveries/{ping['id']}")["max_attempts"]  # as the API says
    assert "ping" in cells and "pending" in cells and f"1/{most}" in cells and "500" in cells
    viewer = make_token(plane.http, "viewer", name="watcher")
    with signed_in(plane.http.base_url, viewer) as browser:
        refused = html_of(browser, "/dashboard/alerts", status=403)
    assert "role viewer may not read the alerts" in refused and receiver.url not in refused


@contextmanager
def _trickler(location: str | None = None) -> Iterator[str]:
    """A receiver on a raw socket that answers 500 and then its body a byte every 0.2 s
    (with ``location``: a 302 to it at once)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                if location is not None:
                    head = (
                        f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                    )
                    conn.sendall(head.encode())
                    continue
                conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(200):
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_slow_answer_is_cut_at_the_timeout_and_a_redirect_target_is_masked(
    plane: Plane,
) -> None:
    """A receiver trickling its answer holds an attempt no longer than the timeout in all
    (each read alone would be quick enough); a redirect's target is recorded without its
    query or password."""
    retry = RetryPolicy(backoff_s=0.1, cap_s=1.0, max_attempts=1, timeout_s=1.0)
    dispatcher = Dispatcher(plane.engine, replica="slow", retry=retry, interval_s=0.1)
    with _trickler() as url:
        ping = plane.post(f"/alerts/webhooks/{_hook(plane, url)['id']}/test", None, 202)
        started = time.monotonic()
        dispatcher.run_once()
        took = time.monotonic() - started
    failed = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert (failed["state"], failed["last_status"]) == ("failed", 500)
    assert failed["last_error"] == "HTTP 500: answer not read within 1s"
    assert took < 20.0  # about a second of answer, not the 40 s the receiver would take
    with _trickler("https://user:pw@elsewhere.example/in?token=abc") as url:
        ping = plane.post(f"/alerts/webhooks/{_hook(plane, url)['id']}/test", None, 202)
        dispatcher.run_once()
    moved = plane.get(f"/alerts/deliveries/{ping['id']}")
    assert moved["last_error"] == (
        "HTTP 302: redirect to https://elsewhere.example/in?… not followed"
    )


def test_a_url_the_sender_could_not_use_is_refused_at_once(plane: Plane) -> None:
    response = plane.http.post("/api/v1/alerts/webhooks", json={"url": "http://[::1]x/hook"})
    assert response.status_code in (400, 422), response.text
    assert plane.get("/alerts/webhooks") == []
