"""sd_notify by hand: real AF_UNIX datagram sockets (a path in tmp_path, the abstract
namespace), the watchdog's cadence and its health gate, no-op without NOTIFY_SOCKET; the
CLI's serve loop; the systemd unit file (parsed, and ``systemd-analyze`` where installed)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import _serve
from agent.sdnotify import Notifier, Supervisor, watchdog_interval
from tests.support.paths import REPO
from tests.support.sdnotify import NotifyListener


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    with NotifyListener(tmp_path / "notify") as sock:
        yield sock


@pytest.fixture
def notifier(listener: NotifyListener) -> Iterator[Notifier]:
    notifier = Notifier(listener.address)
    yield notifier
    notifier.close()


def _lines(listener: NotifyListener) -> tuple[str, ...]:
    message = listener.recv(5)
    assert message is not None, "no datagram arrived"
    return message.lines


def test_messages_arrive_one_datagram_each_from_our_pid(
    listener: NotifyListener, notifier: Notifier
) -> None:
    assert notifier.enabled
    assert notifier.ready("serving det 1.0.0\nREADY=1")  # a newline cannot smuggle a line
    assert _lines(listener) == ("READY=1", "STATUS=serving det 1.0.0 READY=1")
    assert notifier.status("2 models")
    assert _lines(listener) == ("STATUS=2 models",)
    assert notifier.watchdog()
    assert _lines(listener) == ("WATCHDOG=1",)
    assert notifier.stopping("draining")
    assert _lines(listener) == ("STOPPING=1", "STATUS=draining")
    assert notifier.mainpid(4242)
    assert _lines(listener) == ("MAINPID=4242",)
    assert {m.pid for m in listener.received} == {os.getpid()}  # NotifyAccess=main accepts


def test_abstract_namespace_address() -> None:
    address = f"@edgefleet-test-{uuid.uuid4().hex}"
    with NotifyListener(address) as listener:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
        try:
            assert notifier.ready()
            assert _lines(listener) == ("READY=1",)
        finally:
            notifier.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert not notifier.ready("x") and not notifier.watchdog() and not notifier.stopping()
    supervisor = Supervisor(notifier, watchdog_s=1.0)
    assert supervisor.watchdog_s is None  # nobody to ping
    supervisor.ready()
    supervisor.stopping()
    supervisor.close()


@pytest.mark.parametrize("address", ["run/notify", "vsock:2:1234"])
def test_other_address_kinds_are_refused_with_one_warning(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "agent.sdnotify"):
        notifier = Notifier(address)
        assert not notifier.enabled and not notifier.ready() and not notifier.watchdog()
    assert len(caplog.records) == 1 and "NOTIFY_SOCKET" in caplog.records[0].getMessage()


def test_a_broken_socket_never_raises_and_logs_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify"
    notifier = Notifier(str(path))
    try:
        with caplog.at_level(logging.INFO, "agent.sdnotify"):
            assert [notifier.watchdog() for _ in range(3)] == [False, False, False]
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
            with NotifyListener(path) as listener:  # systemd is back
                assert notifier.watchdog()
                assert _lines(listener) == ("WATCHDOG=1",)
            assert not notifier.watchdog() and not notifier.watchdog()  # gone again
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getppid())}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval_from_the_environment(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(env) == expected


def _pings(listener: NotifyListener, count: int, timeout: float = 10) -> list[float]:
    """Arrival times of the next ``count`` WATCHDOG=1 messages."""
    times: list[float] = []
    while len(times) < count:
        times.append(listener.wait_for("WATCHDOG=1", timeout).at)
    return times


def test_watchdog_pings_at_half_the_interval(listener: NotifyListener, notifier: Notifier) -> None:
    supervisor = Supervisor(notifier, watchdog_s=watchdog_interval({"WATCHDOG_USEC": "200000"}))
    assert supervisor.ping_interval_s == pytest.approx(0.1)
    supervisor.ready()
    try:
        assert listener.wait_for("READY=1", 5) is listener.received[0]
        times = _pings(listener, 6)
    finally:
        supervisor.close()
    # never faster than every 0.1 s (a little slack for when each datagram was read)
    assert times[-1] - times[0] >= 5 * 0.1 - 0.05


def test_watchdog_pid_of_another_process_means_no_pings(
    listener: NotifyListener, notifier: Notifier
) -> None:
    env = {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getppid())}
    supervisor = Supervisor(notifier, watchdog_s=watchdog_interval(env))
    supervisor.ready()
    try:
        listener.wait_for("READY=1", 5)
        assert listener.recv(0.5) is None  # ten ping intervals, nothing sent
    finally:
        supervisor.close()


def test_unhealthy_stops_the_pings_says_why_and_recovers(
    listener: NotifyListener, notifier: Notifier
) -> None:
    problem: list[str] = []
    supervisor = Supervisor(
        notifier,
        watchdog_s=0.1,
        checks=[lambda: problem[0] if problem else None],
        status=lambda: "serving det 1.0.0",
    )
    supervisor.ready()
    try:
        assert listener.wait_for("READY=1", 5).get("STATUS") == "serving det 1.0.0"
        _pings(listener, 2)
        problem.append("the deployment worker thread has stopped")
        listener.wait_for("STATUS=unhealthy: the deployment worker thread has stopped", 5)
        assert listener.recv(0.3) is None  # six ping intervals without a ping
        problem.clear()
        listener.wait_for("STATUS=serving det 1.0.0", 5)
        _pings(listener, 2)
    finally:
        supervisor.close()


def test_a_check_that_raises_counts_as_a_problem(
    listener: NotifyListener, notifier: Notifier
) -> None:
    def broken() -> str | None:
        raise RuntimeError("probe exploded")

    supervisor = Supervisor(notifier, watchdog_s=0.1, checks=[broken])
    supervisor.ready()
    try:
        listener.wait_for("READY=1", 5)
        status = listener.recv(5)
        assert status is not None
        assert status.lines == ("STATUS=unhealthy: health check 'broken' failed: probe exploded",)
        assert listener.recv(0.3) is None
    finally:
        supervisor.close()


def test_a_stalled_main_loop_stops_the_pings(listener: NotifyListener, notifier: Notifier) -> None:
    supervisor = Supervisor(notifier, watchdog_s=0.1, stall_s=0.3)
    supervisor.ready()  # counts as one beat; the main loop never beats again
    try:
        message = listener.wait_for("WATCHDOG=1", 5)
        while message.get("STATUS") is None:
            next_message = listener.recv(5)
            assert next_message is not None, "no STATUS= after the main loop stalled"
            message = next_message
        assert (message.get("STATUS") or "").startswith("unhealthy: main loop has not run for")
        assert listener.recv(0.3) is None
        supervisor.beat()  # it runs again
        _pings(listener, 1)
    finally:
        supervisor.close()


def test_after_stopping_the_pings_go_on_whatever_the_checks_say(
    listener: NotifyListener, notifier: Notifier
) -> None:
    draining = threading.Event()
    supervisor = Supervisor(
        notifier,
        watchdog_s=0.1,
        checks=[lambda: "local API does not answer" if draining.is_set() else None],
    )
    supervisor.ready()
    try:
        _pings(listener, 1)
        draining.set()
        supervisor.stopping()
        assert listener.wait_for("STOPPING=1", 5).get("STATUS") == (
            "stopping: draining in-flight requests"
        )
        _pings(listener, 3)
    finally:
        supervisor.close()
    while listener.recv(0) is not None:  # whatever was already queued
        pass
    assert listener.recv(0.3) is None  # closed: silent


def test_status_is_sent_when_it_changes_only(listener: NotifyListener, notifier: Notifier) -> None:
    text = ["no model active"]
    supervisor = Supervisor(notifier, status=lambda: text[0], status_interval_s=0.02)
    supervisor.ready()
    try:
        assert listener.wait_for("READY=1", 5).get("STATUS") == "no model active"
        assert listener.recv(0.2) is None  # ten refreshes, same text: nothing sent
        text[0] = "serving det 1.0.0"
        assert _lines(listener) == ("STATUS=serving det 1.0.0",)
    finally:
        supervisor.close()


# -- the CLI's serve loop -------------------------------------------------------------------


def test_sigterm_during_start_up_still_ends_in_ready_stopping_and_exit_0(
    listener: NotifyListener, notifier: Notifier
) -> None:
    calls: list[str] = []

    def start() -> None:
        calls.append("start")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the agent is starting

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = _serve(start, lambda: calls.append("stop"), Supervisor(notifier, watchdog_s=60))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert code == 0 and calls == ["start", "stop"]
    assert listener.wait_for("READY=1", 5) is listener.received[0]
    listener.wait_for("STOPPING=1", 5)


# -- the unit file --------------------------------------------------------------------------

UNIT = REPO / "packaging" / "systemd" / "edge-agent.service"


def _unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax: [Section], Key=value, a key may repeat, # / ; comments."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not Key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_file_has_the_required_keys() -> None:
    unit = _unit()
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] in ("on-failure", "always") and "RestartSec" in service
    assert "StartLimitIntervalSec" in unit["Unit"] and "StartLimitBurst" in unit["Unit"]
    assert service["KillMode"] == "mixed" and "TimeoutStopSec" in service
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "edgefleet-agent"
    assert service["WorkingDirectory"] == "/var/lib/edgefleet-agent"
    assert service["ExecStart"].endswith(
        "/bin/edge-agent run --config /etc/edgefleet-agent/agent.toml"
    )
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert unit["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert service["MemoryDenyWriteExecute"] == "no"  # OpenVINO's CPU plugin JIT-compiles
    assert "ORT_DISABLE_TELEMETRY=1" in unit["Service"]["Environment"]


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's edge-agent (verify checks it exists)."""
    exe = Path(sys.executable).with_name("edge-agent")
    if not exe.exists():
        pytest.skip("edge-agent is not installed in this environment")
    text = UNIT.read_text().replace("/opt/edgefleet/venv/bin/edge-agent", str(exe))
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    copy = _installed_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not ours, result.stderr  # no unknown or bad keys


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    copy = _installed_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze cannot analyse a unit file offline")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout  # "OK"; 1.3 when this was written
