"""The processes of ``bench.fleet_scale``: Mosquitto, a PostgreSQL database, control-plane
replicas and a light simulated fleet, each a real process on loopback.

- ``mosquitto(root)``: a private Mosquitto on a free port (no persistence, no queue
  limits: the bench measures the control plane, not the broker's drop policy);
- ``postgres(admin_url)``: a fresh database on the local PostgreSQL, dropped afterwards;
- ``Replicas``: ``count`` control planes on that broker and database, one data directory
  (the blob store they share), a share group when there are several, 0.5 s rollout ticks;
- ``light_fleet(...)``: ``edge-agent simulate --light`` in its own process.

Every process logs to a file under the root; one that dies fails the bench with the tail
of its log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil

from edgectl.demo import provision_admin_token, provision_trust
from edgectl.processes import free_port

POSTGRES_ADMIN_URL = os.environ.get(
    "EDGEFLEET_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SHARE_GROUP = "edgefleet"


class Child:
    """A process logging to ``log``; ``check`` raises with its log's tail if it died."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    @property
    def rss_bytes(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self, timeout: float = 60.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _env(**more: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFLEET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env | more


@contextmanager
def mosquitto(root: Path) -> Iterator[str]:
    """A private Mosquitto; its URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nmax_connections -1\n"
        f"log_dest file {root / 'mosquitto.log'}\nlog_type error\nlog_type warning\n"
    )
    child = Child("mosquitto", [binary, "-c", str(conf)], root / "stdout.log", _env())
    try:
        _wait_port(port, child)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        child.stop()


def _wait_port(port: int, child: Child, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        child.check()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} does not listen on {port}") from None
            time.sleep(0.05)


@contextmanager
def postgres(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A fresh database on the local PostgreSQL; its URL."""
    import sqlalchemy as sa

    name = f"edgefleet_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Replicas:
    """``count`` control planes sharing a broker, a database and a blob directory."""

    def __init__(self, root: Path, *, count: int, mqtt_url: str, database_url: str) -> None:
        self.root = root
        self.keys = root / "keys"
        self.trust = provision_trust(self.keys)
        self.token = provision_admin_token(self.keys)
        self._stack = ExitStack()
        self.children: list[Child] = []
        self.urls: list[str] = []
        share = {"EDGEFLEET_MQTT_SHARE_GROUP": SHARE_GROUP} if count > 1 else {}
        for i in range(count):
            port = free_port()
            env = _env(
                EDGEFLEET_ADMIN_TOKEN=self.token,
                EDGEFLEET_ROLLOUT_TICK_S="0.5",
                **share,
            )
            argv = [
                sys.executable, "-m", "controlplane.cli", "--host", "127.0.0.1",
                "--port", str(port), "--data-dir", str(root / "cp-data"),
                "--mqtt-url", mqtt_url, "--database-url", database_url,
                "--root-keys", str(self.keys / "root.pub"), "--trust", str(self.trust),
                "--control-plane-key", str(self.keys / "control-plane.key"),
                "--device-ca-key", str(self.keys / "device-ca.key"), "--log-level", "warning",
            ]  # fmt: skip
            child = Child(f"control plane {i}", argv, root / f"cp-{i}.log", env)
            self.children.append(child)
            self.urls.append(f"http://127.0.0.1:{port}")
            self.wait_healthy(i)  # one at a time: the first creates the tables

    def wait_healthy(self, i: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.children[i].check()
            try:
                if httpx.get(f"{self.urls[i]}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"control plane {i} not healthy after {timeout}s")
            time.sleep(0.1)

    def client(self, i: int = 0, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.urls[i], headers=headers, timeout=timeout)

    def check(self) -> None:
        for child in self.children:
            child.check()

    def rss_bytes(self) -> int:
        return sum(child.rss_bytes for child in self.children)

    def close(self) -> None:
        for child in self.children:
            child.stop()


def light_fleet(
    root: Path,
    replicas: Replicas,
    *,
    count: int,
    mqtt_url: str,
    fleet: str,
    heartbeat_s: float,
    traffic_hz: float = 5.0,
) -> Child:
    """``edge-agent simulate --light`` for ``count`` devices (enrolling with the admin
    token), talking HTTP to the last replica."""
    argv = [
        sys.executable, "-m", "agent.cli", "simulate", "--light", "--count", str(count),
        "--fleet", fleet, "--broker", mqtt_url, "--control-plane", replicas.urls[-1],
        "--data-dir", str(root / "devices"), "--root-key", str(replicas.keys / "root.pub"),
        "--trust", str(replicas.trust), "--heartbeat-interval", str(heartbeat_s),
        "--traffic-hz", str(traffic_hz),
    ]  # fmt: skip
    env = _env(EDGEFLEET_API_TOKEN=replicas.token)
    return Child("light fleet", argv, root / "simulator.log", env)
