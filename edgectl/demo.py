"""``edgectl demo``: the whole product on one machine, in one command.

Starts the control plane (SQLite, embedded MQTT broker) and three simulated devices,
creates a root of trust (root, release and control-plane keys and a root-signed trust
document, as ``edgectl keys create`` / ``edgectl trust init`` would), builds two small
ONNX models in code, pushes each signed (its rollout without a health gate: a demo fleet
has no traffic to judge one by), waits until every device runs both and both rollouts
completed, calls each device's local inference API for each model and prints a summary.

The control plane gets a fresh admin API token (``EDGEFLEET_ADMIN_TOKEN``, kept in the
work dir's ``keys/admin.token``, mode 0600); with ``--keep`` it prints one ``export`` line
(``EDGECTL_URL``, ``EDGECTL_TOKEN`` and ``EDGECTL_KEY``, the demo's release key) after
which the README's tour runs against the demo as written.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from edgectl.client import ControlPlaneClient
from edgectl.demo_model import INPUT_NAME, INPUT_WIDTH, build_demo_model
from edgectl.errors import EdgectlError, UsageError
from edgectl.processes import ChildProcess, console_command, free_port, wait_for
from edgectl.push import push_model
from edgectl.table import render
from model_store import (
    build_trust_document,
    load_private_key,
    load_public_key,
    parse_unverified_trust,
    write_keypair,
)
from model_store.trust import Role

logger = logging.getLogger(__name__)

FLEET = "demo"
DEVICES = 3
MODEL = "demo-classifier"
VERSION = "1.0.0"
#: The demo's models: a device serves both side by side (name, version, weights seed).
MODELS = ((MODEL, VERSION, 7), ("demo-scorer", "2.0.0", 11))


def provision_trust(keys: Path) -> Path:
    """Root, release, control-plane and device-CA key pairs and a root-signed trust
    document (v1) certifying them."""
    for role in ("root", "release", "control-plane", "device-ca"):
        if not (keys / f"{role}.key").exists():
            write_keypair(keys, role)
    trust = keys / "trust.json"
    if not trust.exists():
        document = build_trust_document(
            version=1,
            expires=datetime.now(UTC) + timedelta(days=365),
            roots=[load_public_key(keys / "root.pub")],
            releases=[load_public_key(keys / "release.pub")],
            control_planes=[load_public_key(keys / "control-plane.pub")],
            device_cas=[load_public_key(keys / "device-ca.pub")],
            signers=[load_private_key(keys / "root.key")],
        )
        trust.write_bytes(document.raw())
    elif not parse_unverified_trust(trust.read_bytes()).roles[Role.DEVICE_CA]:
        raise UsageError(
            f"{trust} certifies no device CA (made by an older edgectl); use a new --workdir"
        )
    return trust


def provision_admin_token(keys: Path) -> str:
    """The demo control plane's admin API token: kept in ``keys/admin.token`` (0600)."""
    path = keys / "admin.token"
    if path.exists():
        return path.read_text().strip()
    token = "efk_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _start_with_env(name: str, argv: list[str], log: Path, env: dict[str, str]) -> ChildProcess:
    """A ChildProcess that also gets ``env`` (set only while it is started)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return ChildProcess(name, argv, log)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _infer(local_api: str, features: np.ndarray, model: str) -> tuple[np.ndarray, float]:
    body = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": list(features.shape),
                "datatype": "FP32",
                "data": features.ravel().tolist(),
            }
        ]
    }
    latencies = []
    with httpx.Client(base_url=local_api, timeout=10) as http:
        for _ in range(20):
            start = time.perf_counter()
            try:
                response = http.post(f"/v2/models/{model}/infer", json=body)
            except httpx.HTTPError as exc:
                raise EdgectlError(f"inference on {local_api} failed: {exc}") from exc
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise EdgectlError(f"inference on {local_api} failed: {response.text.strip()}")
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"]), statistics.median(
        latencies
    )


def _demo_devices(client: ControlPlaneClient, since: datetime) -> list[dict[str, Any]]:
    """The demo fleet's devices that reported since this run started (with --workdir, the
    database also remembers devices and local API addresses of earlier runs)."""
    return [
        d
        for d in client.devices()
        if d.get("fleet") == FLEET
        and d.get("online")
        and d.get("last_report_at")
        and datetime.fromisoformat(str(d["last_report_at"]).replace("Z", "+00:00")) >= since
    ]


def _serves(device: dict[str, Any]) -> set[tuple[str, str]]:
    """The (model, version) pairs a device reports it serves."""
    return {
        (str(m.get("name")), str(m.get("version")))
        for m in device.get("models") or []
        if m.get("state") == "active"
    }


#: The demo's rollouts go out without a health gate: its fleet serves no traffic for one
#: to judge (a gate waits for ``min_requests`` per device and would keep them running).
DEMO_STRATEGY = {"gate": {"enabled": False}}


def _rollouts_completed(client: ControlPlaneClient, ids: list[int]) -> bool:
    """True once every rollout in ``ids`` completed; an error if one stopped short."""
    states = {r: str(client.rollout(r)["state"]) for r in ids}
    stopped = {r: st for r, st in states.items() if st in ("paused", "aborted")}
    if stopped:
        raise EdgectlError(
            "rollout "
            + ", ".join(f"{r} is {st}" for r, st in stopped.items())
            + " (see `edgectl rollouts show ID`)"
        )
    return all(st == "completed" for st in states.values())


def _all_active(client: ControlPlaneClient, since: datetime) -> bool:
    devices = _demo_devices(client, since)
    wanted = {(name, version) for name, version, _ in MODELS}
    return len(devices) >= DEVICES and all(
        wanted <= _serves(d) and d.get("local_api") for d in devices
    )


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    """Within the agents' accuracy guard: a device may serve the model in bf16/f16 if
    that measured fastest, so outputs may differ from fp32 ONNX Runtime by up to 1% of
    the largest absolute reference value (as the selection's guard allows)."""
    scale = float(np.max(np.abs(expected))) or 1.0
    return got.shape == expected.shape and float(np.max(np.abs(got - expected))) <= 0.01 * scale


def export_line(url: str, token: str, key: Path) -> str:
    """The one shell line that points ``edgectl`` at the demo: its URL, its admin token
    and the release key its trust document certifies (so pushes are accepted)."""
    values = {"EDGECTL_URL": url, "EDGECTL_TOKEN": token, "EDGECTL_KEY": str(key.resolve())}
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop the children and clean up, as for Ctrl-C


def run_demo(*, keep: bool, workdir: Path | None, timeout: float = 120.0) -> int:
    started = datetime.now(UTC)
    root = workdir or Path(tempfile.mkdtemp(prefix="edgefleet-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    http_port, broker_port = free_port(), free_port()
    url, broker = f"http://127.0.0.1:{http_port}", f"mqtt://127.0.0.1:{broker_port}"
    keys = root / "keys"
    trust = provision_trust(keys)
    token = provision_admin_token(keys)
    children: list[ChildProcess] = []
    succeeded = False
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"control plane on {url} (SQLite, embedded MQTT broker on {broker})")
        children.append(
            _start_with_env(
                "control plane",
                [
                    *console_command("edgefleet-controlplane", "controlplane.cli"),
                    "--port",
                    str(http_port),
                    "--embedded-broker",
                    "--broker-port",
                    str(broker_port),
                    "--data-dir",
                    str(root / "controlplane"),
                    "--root-keys",
                    str(keys / "root.pub"),
                    "--trust",
                    str(trust),
                    "--control-plane-key",
                    str(keys / "control-plane.key"),
                    "--device-ca-key",
                    str(keys / "device-ca.key"),
                ],
                root / "logs" / "controlplane.log",
                {"EDGEFLEET_ADMIN_TOKEN": token},
            )
        )
        client = ControlPlaneClient(url, token=token)
        wait_for(
            lambda: bool(client.health()), timeout=60, what="the control plane", children=children
        )
        print(f"starting {DEVICES} simulated devices in fleet '{FLEET}'")
        children.append(
            _start_with_env(
                "simulated devices",
                [
                    *console_command("edge-agent", "agent.cli"),
                    "simulate",
                    "--count",
                    str(DEVICES),
                    "--fleet",
                    FLEET,
                    "--broker",
                    broker,
                    "--control-plane",
                    url,
                    "--data-dir",
                    str(root / "devices"),
                    "--root-key",
                    str(keys / "root.pub"),
                    "--trust",
                    str(trust),
                ],
                root / "logs" / "devices.log",
                {"EDGEFLEET_API_TOKEN": token},  # the simulator enrolls its devices with it
            )
        )
        wait_for(
            lambda: len(_demo_devices(client, started)) >= DEVICES,
            timeout=timeout,
            what=f"{DEVICES} devices to register",
            children=children,
        )
        paths = {}
        rollouts: list[int] = []
        for name, version, seed in MODELS:  # two models, side by side on every device
            paths[name] = build_demo_model(root / "model" / f"{name}.onnx", seed=seed)
            print(
                f"pushing {name} {version} (signed with {keys / 'release.key'}) to fleet '{FLEET}'"
            )
            pushed = push_model(
                client,
                paths[name],
                name=name,
                version=version,
                fleet=FLEET,
                key_path=keys / "release.key",
                strategy=DEMO_STRATEGY,
            )
            if pushed.rollout is not None:
                rollouts.append(int(pushed.rollout["id"]))
        wait_for(
            lambda: _all_active(client, started),
            timeout=timeout,
            what="all devices to activate " + " and ".join(f"{n} {v}" for n, v, _ in MODELS),
            children=children,
        )
        wait_for(
            lambda: _rollouts_completed(client, rollouts),
            timeout=timeout,
            what="both rollouts to complete",
            children=children,
        )
        print("rollouts " + ", ".join(str(r) for r in rollouts) + " completed")
        features = np.random.default_rng(0).standard_normal((1, INPUT_WIDTH)).astype(np.float32)
        rows = []
        for device in sorted(_demo_devices(client, started), key=lambda d: str(d["id"])):
            served = {str(m["name"]): m for m in device.get("models") or []}
            for name, _, _ in MODELS:
                (expected,) = ort.InferenceSession(str(paths[name])).run(
                    None, {INPUT_NAME: features}
                )
                got, latency = _infer(str(device["local_api"]), features, name)
                match = "yes" if _close(got, expected) else "NO"
                model = served.get(name) or {}
                rows.append(
                    [
                        device["id"],
                        name,
                        model.get("version"),
                        model.get("backend"),
                        device["status"],
                        f"{latency:.2f} ms",
                        match,
                    ]
                )
        print()
        print(
            render(
                [
                    "device",
                    "model",
                    "version",
                    "backend",
                    "status",
                    "p50 latency",
                    "matches ORT (1%)",
                ],
                rows,
            )
        )
        if any(r[-1] != "yes" for r in rows):
            raise EdgectlError("a device's output differs from a direct ONNX Runtime run")
        if keep:
            print(f"\ncontrol plane: {url}  (API docs {url}/docs)\nbroker: {broker}")
            print(f"dashboard: {url}/dashboard  (sign in with the admin token)")
            print(f"admin token: {token}")
            print("point edgectl at the demo (then follow the README's tour):")
            print(export_line(url, token, keys / "release.key"))
            for device in _demo_devices(client, started):
                for name, _, _ in MODELS:
                    print(f"{device['id']}: {device['local_api']}/v2/models/{name}")
            print(f"work dir: {root}\nrunning; press Ctrl-C to stop")
            try:
                while True:
                    for child in children:
                        child.check_alive()
                    time.sleep(1)
            except KeyboardInterrupt:
                print("stopping")
        succeeded = True
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        if succeeded and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
        elif not succeeded:
            print(f"logs kept in {root / 'logs'}")
