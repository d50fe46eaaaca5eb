"""A fleet of 1,000 light devices on Mosquitto and PostgreSQL, with 1 and 2 control-plane
replicas (issue 15.5).

    python -m bench.fleet_scale [--devices 1000] [--reports 60000] [--quick]

For 1, then 2 replicas, each on a fresh Mosquitto, PostgreSQL database and blob store
(``bench.scale_stack``), with ``--devices`` light devices in one process (``edge-agent
simulate --light``, heartbeats every 30 s):

- ``register_s``: from starting the simulator until every device enrolled, registered and
  online (the rollouts below start from a settled fleet, not one still connecting);
- ``converge_s``: a model version uploaded, then a rollout to the whole fleet created (all
  at once, gate off): from creating it until every device reported it active (each device
  downloads and checks the bundle itself);
- ``fanout_s``: then a version whose bundle weighs ``--bundle-mb`` (20 MB: one MatMul of
  random weights) rolled out the same way: until every device downloaded, checked and
  activated it; ``fanout_mb_per_s`` is the bytes the control plane served (devices x
  bundle) over that time;
- control-plane RSS (all replicas) per 1,000 devices, after converging;
- ``reports_per_s``: the simulator stopped, its devices' heartbeats come faster than
  production from ``bench.report_flood`` (the devices' own report keys, sealed before the
  clock starts): ``--reports`` of them, as fast as the broker takes them. Rate = reports
  the replicas applied (``/status``) over the time from the first sent to the last
  applied, per replica;
- ``box_cpu_busy``: the fraction of the box's cores busy from the first report sent to
  the last applied (all processes: 1.0 means the box, not the control plane, was the
  limit); ``cpu_us_per_report``: CPU microseconds per applied report, by role (the
  replicas, PostgreSQL, the broker, the load generator);
- ``api_p99_ms``: during that flood, ``GET /devices?limit=100`` and ``GET /status`` in a
  loop on the first replica: the 99th percentile of their latency.

Then the floor, in the same run: the same sealed heartbeats from the same generator
through a fresh Mosquitto to its own C subscriber, which does nothing with them
(``mosquitto_sub``; ``floor_msgs_per_s``); ``fraction_of_floor`` is the replicas' total
rate over it. ``two_replica_speedup`` is the total rate with two replicas over one;
``speedup_ceiling_on_this_box`` is the most it could be here: all cores busy at the one-
replica run's CPU cost per report, over that run's rate. Goals (this 2-core box):
converge_s <= 20, reports_per_s >= 5,000 per replica, two_replica_speedup >= 1.7;
``met`` says which held (a missed goal is printed as "NOT met"; it does not fail the
run). ``--quick``: 50 devices, 3,000 reports, a 1 MB bundle.
The box is shared by every process of the bench, load generator included: ratios in one
run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from bench.models import _mlp
from bench.options import parse_args
from bench.scale_stack import Child, Replicas, light_fleet, mosquitto, postgres
from edgectl.client import ControlPlaneClient
from edgectl.push import push_model
from protocol import parse_broker_url

FLEET = "scale"
GOALS = {"converge_s": 20.0, "reports_per_s": 5000.0, "two_replica_speedup": 1.7}
ALL_AT_ONCE = {"gate": {"enabled": False}}


def _wait(predicate: Any, what: str, timeout: float, children: Sequence[Child]) -> float:
    start = time.monotonic()
    while not predicate():
        for child in children:
            child.check()
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - start


def _registered(http: httpx.Client) -> int:
    response = http.get(f"/api/v1/fleets/{FLEET}")
    return int(response.json().get("device_count", 0)) if response.status_code == 200 else 0


def _busy(before: Any, after: Any) -> float:
    """The fraction of all the box's cores that was busy between two ``cpu_times()``."""
    total = sum(after) - sum(before)
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return 1.0 - idle / total if total > 0 else 0.0


class RoleCpu:
    """CPU seconds used by each role's processes on this box: the replicas, PostgreSQL
    (every ``postgres`` process) and the broker (the load generator reports its own)."""

    def __init__(self, roles: dict[str, list[psutil.Process]]) -> None:
        self._roles = roles

    @classmethod
    def of(cls, replicas: Replicas, broker_port: int) -> RoleCpu:
        broker, postgres = [], []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "postgres":
                postgres.append(proc)
            elif proc.info["name"] == "mosquitto" and any(
                str(broker_port) in Path(arg).read_text(errors="replace")
                for arg in proc.info["cmdline"] or ()
                if arg.endswith(".conf") and Path(arg).is_file()
            ):
                broker.append(proc)
        return cls({
            "replicas": [psutil.Process(c.process.pid) for c in replicas.children],
            "postgres": postgres,
            "broker": broker,
        })  # fmt: skip

    def sample(self) -> dict[str, float]:
        out = {}
        for role, procs in self._roles.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue  # a PostgreSQL backend that ended
                total += times.user + times.system
            out[role] = total
        return out


def _per_report_us(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    return {role: round((after[role] - before[role]) / max(n, 1) * 1e6, 1) for role in after}


def _online(database_url: str) -> int:
    """Devices the control plane holds as online (read in its database)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM device WHERE online")).scalar_one()
            )
    finally:
        engine.dispose()


def _applied(replicas: Replicas) -> tuple[int, int]:
    applied = dropped = 0
    for i in range(len(replicas.urls)):
        with replicas.client(i) as http:
            status = http.get("/api/v1/status").json()
        applied, dropped = applied + status["applied"], dropped + status["dropped"]
    return applied, dropped


class Prober:
    """Times API calls on one replica in a loop, in a thread, until stopped."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        paths = ("/api/v1/devices?limit=100", "/api/v1/status")
        n = 0
        while not self._stop.is_set():
            start = time.perf_counter()
            self._http.get(paths[n % 2])
            self.latencies.append(time.perf_counter() - start)
            n += 1
            self._stop.wait(0.05)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def p99_ms(self) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[98] * 1000


def _flood(devices: Path, broker: str, reports: int, rate: float = 0.0) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "bench.report_flood", "--devices", str(devices),
        "--broker", broker, "--reports", str(reports), "--rate", str(rate),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("report_flood did not get ready")
    return proc


def _go(proc: subprocess.Popen[str]) -> dict[str, float]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    proc.wait(60)
    result: dict[str, float] = json.loads(line)
    return result


def _model(root: Path) -> Path:
    return _mlp(root / "model" / "model.onnx", [64, 256, 256, 16])


def _big_model(root: Path, megabytes: float) -> Path:
    """One MatMul whose random float32 weights weigh ``megabytes``."""
    rows = max(1, int(megabytes * 2**20 / 4 / 1024))
    return _mlp(root / "big" / "model.onnx", [rows, 1024])


def _roll_out(client: ControlPlaneClient, version: str, children: Sequence[Child]) -> float:
    """Roll ``version`` of det out to the whole fleet (all at once, gate off); seconds
    until every device reported it active."""
    start = time.monotonic()
    rollout = client.create_rollout("det", version, FLEET, strategy=ALL_AT_ONCE)

    def converged() -> bool:
        return bool(client.rollout(int(rollout["id"]))["state"] == "completed")

    _wait(converged, f"every device active on {version}", 1800, children)
    return time.monotonic() - start


def run_replicas(
    count: int, devices: int, reports: int, bundle_mb: float, root: Path, rate: float = 0.0
) -> dict[str, Any]:
    with mosquitto(root / "mosquitto") as broker, postgres() as database:
        replicas = Replicas(root, count=count, mqtt_url=broker, database_url=database)
        sim: Child | None = None
        try:
            sim = light_fleet(
                root, replicas, count=devices, mqtt_url=broker, fleet=FLEET, heartbeat_s=30.0
            )
            children = [sim, *replicas.children]
            with replicas.client(count - 1) as http:
                register_s = _wait(
                    lambda: _registered(http) >= devices and _online(database) >= devices,
                    "devices registered and online",
                    600,
                    children,
                )
                client = ControlPlaneClient(replicas.urls[-1], token=replicas.token)
                key = replicas.keys / "release.key"
                push_model(client, _model(root), name="det", version="1.0.0", fleet=None,
                           key_path=key)  # fmt: skip
                converge_s = _roll_out(client, "1.0.0", children)
                big = _big_model(root, bundle_mb)
                push_model(client, big, name="det", version="2.0.0", fleet=None, key_path=key)
                fanout_s = _roll_out(client, "2.0.0", children)
                fanout_mb = big.stat().st_size / 2**20 * devices
            rss = replicas.rss_bytes()
            sim.stop()
            sim = None
            flood = _flood(root / "devices", broker, reports, rate * count)
            roles = RoleCpu.of(replicas, parse_broker_url(broker).port)
            before, dropped_before = _applied(replicas)
            cpu_before, roles_before = psutil.cpu_times(), roles.sample()
            with replicas.client(0) as api, Prober(api) as prober:
                start = time.monotonic()
                sent = _go(flood)
                last, last_change, cpu_last = before, time.monotonic(), cpu_before
                roles_last = roles_before
                while time.monotonic() - last_change < 3.0:
                    replicas.check()
                    now, _ = _applied(replicas)
                    if now != last:
                        last, last_change, cpu_last = now, time.monotonic(), psutil.cpu_times()
                        roles_last = roles.sample()
                    time.sleep(0.25)
            applied = last - before
            box_busy = _busy(cpu_before, cpu_last)
            _, dropped = _applied(replicas)
            seconds = last_change - start
            return {
                "replicas": count,
                "register_s": round(register_s, 1),
                "converge_s": round(converge_s, 1),
                "bundle_mb": round(big.stat().st_size / 2**20, 1),
                "fanout_s": round(fanout_s, 1),
                "fanout_mb_per_s": round(fanout_mb / fanout_s, 1),
                "cp_rss_mb": round(rss / 2**20, 1),
                "cp_rss_mb_per_1000_devices": round(rss / 2**20 / (devices / 1000), 1),
                "reports_sent": int(sent["published"]),
                "reports_applied": applied,
                "reports_dropped": dropped - dropped_before,
                "send_rate": round(sent["rate"], 1),
                "reports_per_s_total": round(applied / seconds, 1),
                "reports_per_s": round(applied / seconds / count, 1),
                "box_cpu_busy": round(box_busy, 2),
                "cpu_us_per_report": {
                    **_per_report_us(roles_before, roles_last, applied),
                    "load_generator": round(sent["cpu_s"] / max(applied, 1) * 1e6, 1),
                },
                "api_p99_ms": round(prober.p99_ms(), 1),
                "api_calls": len(prober.latencies),
            }
        finally:
            if sim is not None:
                sim.stop()
            replicas.close()


def floor(devices_dir: Path, reports: int, root: Path) -> dict[str, Any]:
    """The same sealed heartbeats, from the same generator, through Mosquitto to its own
    C subscriber (``mosquitto_sub``, QoS 1) that does nothing with them."""
    with mosquitto(root / "floor-mosquitto") as broker:
        address = parse_broker_url(broker)
        argv = [
            shutil.which("mosquitto_sub") or "mosquitto_sub", "-h", address.host,
            "-p", str(address.port), "-q", "1", "-t", "edgefleet/v1/devices/+/heartbeat",
            "-C", str(reports),
        ]  # fmt: skip
        sub = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        time.sleep(0.5)  # subscribed
        flood = _flood(devices_dir, broker, reports)
        start = time.monotonic()
        _go(flood)
        sub.wait(120)
        seconds = time.monotonic() - start
    return {"floor_received": reports, "floor_msgs_per_s": round(reports / seconds, 1)}


def speedup_ceiling(one: dict[str, Any]) -> float:
    """The most any number of replicas could apply on this box, over one replica's rate:
    every core busy with what one report cost in the one-replica run (all roles: the
    replicas, PostgreSQL, the broker, the load generator)."""
    cpu_s_per_report = sum(one["cpu_us_per_report"].values()) / 1e6
    if cpu_s_per_report <= 0:
        return float("nan")
    return (psutil.cpu_count() or 1) / cpu_s_per_report / one["reports_per_s_total"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale", description=__doc__)
    parser.add_argument("--devices", type=int, default=1000, help="light devices (1000)")
    parser.add_argument("--reports", type=int, default=60_000, help="heartbeats to flood")
    parser.add_argument("--bundle-mb", type=float, default=20.0, help="the fan-out bundle")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="heartbeats a second offered per replica (default 0: as fast as they go)",
    )
    args = parse_args(parser, argv, devices=50, reports=3000, bundle_mb=1.0)
    with tempfile.TemporaryDirectory(prefix="ef-scale-") as tmp:
        root = Path(tmp)
        one = run_replicas(1, args.devices, args.reports, args.bundle_mb, root / "one", args.rate)
        base = floor(root / "one" / "devices", args.reports, root)
        two = run_replicas(2, args.devices, args.reports, args.bundle_mb, root / "two", args.rate)
    speedup = two["reports_per_s_total"] / one["reports_per_s_total"]
    ceiling = speedup_ceiling(one)
    result = {
        "devices": args.devices,
        "converge_s": one["converge_s"],
        "converge_s_two_replicas": two["converge_s"],
        "reports_per_s": one["reports_per_s"],
        "reports_per_s_two_replicas": two["reports_per_s"],
        "two_replica_speedup": round(speedup, 2),
        "speedup_ceiling_on_this_box": round(ceiling, 2),
        "fanout_s": one["fanout_s"],
        "fanout_mb_per_s": one["fanout_mb_per_s"],
        "bundle_mb": one["bundle_mb"],
        "cp_rss_mb_per_1000_devices": one["cp_rss_mb_per_1000_devices"],
        "api_p99_ms": one["api_p99_ms"],
        "api_p99_ms_two_replicas": two["api_p99_ms"],
        **base,
        "fraction_of_floor": round(one["reports_per_s_total"] / base["floor_msgs_per_s"], 3),
        "fraction_of_floor_two_replicas": round(
            two["reports_per_s_total"] / base["floor_msgs_per_s"], 3
        ),
        "one_replica": one,
        "two_replicas": two,
        "quick": args.quick,
    }
    met = {
        "converge_s": result["converge_s"] <= GOALS["converge_s"],
        "reports_per_s": result["reports_per_s"] >= GOALS["reports_per_s"],
        "two_replica_speedup": speedup >= GOALS["two_replica_speedup"],
    }
    result["goals"] = GOALS
    result["met"] = met
    for key in ("floor_msgs_per_s", "fanout_mb_per_s", "api_p99_ms", "speedup_ceiling_on_this_box"):
        print(f"{key:32} {result[key]}")
    for key, ok in met.items():
        print(f"{key:32} {result[key]}  (goal {GOALS[key]}: {'met' if ok else 'NOT met'})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
