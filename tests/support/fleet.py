"""A whole simulated fleet for rollout tests: Mosquitto, a control plane, N agents.

``open_fleet(workdir, count=20, ...)`` starts a private Mosquitto, a control plane
process (``run_controlplane``, a fast rollout tick) and a ``SimulatedFleet`` of ``count``
devices with short heartbeats and steady traffic, waits until every device registered
(applying the labels the fleet gives them), and yields a ``FleetStack``:

- ``http``: an ``httpx.Client`` on the control plane with the admin token;
- ``push(version, ...)``: build, sign (the kit's release key) and upload a bundle of a
  tiny affine ONNX model, optionally with bundle constraints;
- ``create_rollout(...)``, ``rollout(id)``, ``wait_rollout(id, predicate, what)``: the
  rollout API; a timeout's message holds the rollout's JSON;
- ``versions()``: what each agent itself serves; ``events``: every deployment event
  the agents published (a test-side MQTT subscriber);
- ``restart_controlplane(down_s, kill=False)``: stop the control plane (or ``kill -9``
  it) and start it again on the same port and data directory (SQLite database included).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.simulator import SimulatedFleet
from agent.simulator.enroll import api_enrollment
from agent.simulator.latency import LatencyKnob, SlowRule
from agent.simulator.light import LightFleet
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    load_private_key,
    sha256_file,
    sign_bundle,
)
from protocol import DeploymentEvent, FileRef, TopicKind
from tests.support.controlplane import (
    ControlPlaneProcess,
    SignedBundle,
    api_client,
    run_controlplane,
    upload_bundle,
)
from tests.support.identity import report_of
from tests.support.mosquitto import Broker, run_mosquitto
from tests.support.onnx_models import affine_model
from tests.support.trust import TrustKit, make_trust_kit

#: Seconds between two steps of the control plane's rollout driver in these tests.
ROLLOUT_TICK_S = 0.5


class EventLog:
    """Every ``DeploymentEvent`` the agents publish, as a test-side MQTT subscriber."""

    def __init__(self, broker: Broker) -> None:
        self._lock = threading.Lock()
        self._events: list[DeploymentEvent] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-event-log")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe(f"edgefleet/v1/devices/+/{TopicKind.EVENTS}", qos=1)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        event = report_of(DeploymentEvent, msg.payload)
        with self._lock:
            self._events.append(event)

    def devices_that_received(self, model: str, version: str) -> set[str]:
        """Devices that published any event (received, ..., failed) for this version."""
        with self._lock:
            return {
                e.device_id
                for e in self._events
                if e.model_name == model and e.model_version == version
            }

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class FleetStack:
    workdir: Path
    broker: Broker
    kit: TrustKit
    fleet: SimulatedFleet | LightFleet
    events: EventLog
    model: str
    fleet_name: str
    _cp: ControlPlaneProcess
    _cp_stack: ExitStack
    #: extra environment of the control plane (kept across restarts)
    cp_env: Mapping[str, str] = field(default_factory=dict)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = api_client(self._cp.url, timeout=10.0)

    @property
    def cp(self) -> ControlPlaneProcess:
        return self._cp

    # -- bundles ---------------------------------------------------------------------

    def bundle(
        self,
        version: str,
        *,
        scale: float = 2.0,
        constraints: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> SignedBundle:
        """A signed bundle of ``y = x * scale + 1`` (``constraints``: ``edgefleet.json``'s;
        ``model``: another model than the stack's)."""
        model = model or self.model
        work = Path(tempfile.mkdtemp(prefix=f"bundle-{version}-", dir=self.workdir))
        source = affine_model(work / "src" / "model.onnx", scale=scale)
        directory = work / "bundle"
        build_bundle(source, directory, name=model, version=version, constraints=constraints)
        sig = sign_bundle(directory, load_private_key(self.kit.release_key))
        files = [
            FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(directory)
        ]
        signature = FileRef(
            path=SIGNATURE_FILENAME, sha256=sha256_file(sig), size=sig.stat().st_size
        )
        return SignedBundle(model, version, directory, files, signature)

    def push(self, version: str, **kwargs: Any) -> SignedBundle:
        """Build and upload a version (no rollout); see ``bundle`` for the arguments."""
        bundle = self.bundle(version, **kwargs)
        response = upload_bundle(self.http, bundle)
        assert response.status_code == 201, response.text
        return bundle

    # -- rollouts --------------------------------------------------------------------

    def create_rollout(
        self,
        version: str | None,
        strategy: Mapping[str, Any] | None = None,
        selector: Mapping[str, str] | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Start a rollout of ``version`` (None: an undeploy of the model)."""
        body: dict[str, Any] = {"model": model or self.model, "fleet": self.fleet_name}
        if version is None:
            body["undeploy"] = True
        else:
            body["version"] = version
        if strategy is not None:
            body["strategy"] = dict(strategy)
        if selector is not None:
            body["selector"] = dict(selector)
        response = self.http.post("/api/v1/rollouts", json=body)
        assert response.status_code == 201, response.text
        rollout: dict[str, Any] = response.json()
        return rollout

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/rollouts/{rollout_id}")
        assert response.status_code == 200, response.text
        rollout: dict[str, Any] = response.json()
        return rollout

    def wait_rollout(
        self,
        rollout_id: int,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 60.0,
        interval: float = 0.25,
    ) -> dict[str, Any]:
        """Poll until ``predicate(rollout)``; a timeout names ``what`` and shows the JSON."""
        deadline = time.monotonic() + timeout
        while True:
            rollout = self.rollout(rollout_id)
            if predicate(rollout):
                return rollout
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; rollout:\n"
                    + json.dumps(rollout, indent=1)
                )
            time.sleep(interval)

    def wait_state(self, rollout_id: int, state: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the rollout is ``state``; fails at once if it ends in another one."""
        rollout = self.wait_rollout(
            rollout_id,
            lambda r: r["state"] == state or r["state"] in {"completed", "aborted"},
            f"rollout {rollout_id} to be {state}",
            timeout,
        )
        assert rollout["state"] == state, json.dumps(rollout, indent=1)
        return rollout

    # -- devices ---------------------------------------------------------------------

    def versions(self, model: str | None = None) -> dict[str, str | None]:
        """Per device, the version of ``model`` (default: the stack's) its agent serves
        right now (None: none)."""
        name = model or self.model
        if isinstance(self.fleet, LightFleet):
            return self.fleet.versions(name)
        out: dict[str, str | None] = {}
        for agent in self.fleet.agents:
            active = [m.version for m in agent.active if m.name == name]
            out[agent.device_id] = active[0] if active else None
        return out

    def wait_versions(
        self,
        expected: Mapping[str, str | None],
        what: str,
        timeout: float = 60.0,
        model: str | None = None,
    ) -> None:
        """Poll until every device in ``expected`` serves that version of ``model``, on
        the agent and as the control plane knows it (its next rollout's previous version
        comes from what devices last reported)."""
        name = model or self.model
        deadline = time.monotonic() + timeout
        while True:
            now = self.versions(name)
            wrong = {d: now[d] for d, v in expected.items() if now[d] != v}
            if not wrong:
                known = {d: _known_version(row, name) for d, row in self.devices().items()}
                wrong = {
                    f"{d} (control plane)": known[d] for d, v in expected.items() if known[d] != v
                }
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: {wrong}")
            time.sleep(0.2)

    def devices(self) -> dict[str, dict[str, Any]]:
        response = self.http.get("/api/v1/devices")
        assert response.status_code == 200, response.text
        return {d["id"]: d for d in response.json()}

    def reported(self) -> dict[str, dict[str, Any]]:
        """The devices that have sent a state report since they enrolled."""
        return {k: d for k, d in self.devices().items() if d.get("last_report_at")}

    # -- the control plane -----------------------------------------------------------

    def restart_controlplane(self, down_s: float = 0.0, *, kill: bool = False) -> None:
        """Stop the control plane process (``kill``: with ``kill -9``, in whatever it was
        doing) and start it again on the same port and data."""
        port = self._cp.port
        if kill:
            self._cp.process.kill()
            self._cp.process.wait()
        self._cp_stack.close()
        time.sleep(down_s)
        self._cp_stack = ExitStack()
        self._cp = self._cp_stack.enter_context(
            _controlplane(self.workdir, self.broker, self.kit, port, env=self.cp_env)
        )

    def close(self) -> None:
        self.http.close()
        self._cp_stack.close()


def _known_version(device: Mapping[str, Any], model: str) -> str | None:
    """The version of ``model`` the control plane last heard a device runs."""
    selection = (device.get("selections") or {}).get(model)
    if selection:
        return str(selection["version"])
    return device["active_version"] if device.get("active_model") == model else None


@contextmanager
def _controlplane(
    workdir: Path,
    broker: Broker,
    kit: TrustKit,
    port: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[ControlPlaneProcess]:
    env = {"EDGEFLEET_ROLLOUT_TICK_S": str(ROLLOUT_TICK_S), **(env or {})}
    with run_controlplane(
        workdir / "cp", mqtt_url=broker.url, trust_kit=kit, env=env, port=port
    ) as cp:
        yield cp


@contextmanager
def open_fleet(
    workdir: Path,
    *,
    count: int = 20,
    fleet: str = "store-eu",
    model: str = "det",
    traffic_hz: float = 10.0,
    heartbeat_interval_s: float = 0.5,
    latency_ms: LatencyKnob | Sequence[SlowRule] | None = None,
    labels: Callable[[int], Mapping[str, str]] | None = None,
    register_timeout_s: float = 60.0,
    light: bool = False,
    shared_cache: bool = True,
    cp_env: Mapping[str, str] | None = None,
) -> Iterator[FleetStack]:
    """Mosquitto + control plane (``cp_env``: its extra environment) + ``count``
    simulated agents, all registered (``light``: light simulated devices,
    ``agent.simulator.light``)."""
    with ExitStack() as outer:
        broker = outer.enter_context(run_mosquitto(workdir / "mosquitto"))
        kit = make_trust_kit(workdir / "trust")
        cp_stack = ExitStack()
        holder: list[FleetStack] = []  # a restart replaces the stack's control plane
        outer.callback(lambda: holder[0].close() if holder else cp_stack.close())
        cp = cp_stack.enter_context(_controlplane(workdir, broker, kit, env=cp_env))
        events = EventLog(broker)
        outer.callback(events.close)
        common: dict[str, Any] = {
            "count": count,
            "fleet": fleet,
            "broker_url": broker.url,
            "control_plane_url": cp.url,
            "data_dir": workdir / "devices",
            "root_keys": [kit.root_pub],
            "trust_file": kit.trust_file,
            "heartbeat_interval_s": heartbeat_interval_s,
            "latency_ms": latency_ms,
            "traffic_hz": traffic_hz,
            "labels": labels,
            "enrollment": api_enrollment(cp.url, cp.token, fleet),
        }
        sim: SimulatedFleet | LightFleet
        if light:
            sim = LightFleet(**common, shared_cache=shared_cache)
        else:
            sim = SimulatedFleet(**common, agent_config={"selection_budget_s": 1.0})
        stack = FleetStack(
            workdir=workdir,
            broker=broker,
            kit=kit,
            fleet=sim,
            events=events,
            model=model,
            fleet_name=fleet,
            _cp=cp,
            _cp_stack=cp_stack,
            cp_env=dict(cp_env or {}),
        )
        holder.append(stack)
        outer.enter_context(sim)  # stopped before the control plane (callbacks: LIFO)
        deadline = time.monotonic() + register_timeout_s
        while len(set(stack.reported()) & set(sim.device_ids)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not all {count} simulated devices registered")
            time.sleep(0.2)
        for device_id in sim.device_ids:
            if wanted := sim.labels_of(device_id):
                response = stack.http.patch(
                    f"/api/v1/devices/{device_id}/labels", json={"set": wanted}
                )
                assert response.status_code == 200, response.text
        yield stack
