"""The agent deployment harness on loopback, shared by the agent integration tests.

``Setup`` / ``open_setup``: a root of trust (``TrustKit``), a blob server that also serves
the trust chain, agent factories (in-process ``Setup.agent`` or ``Setup.process_config``
for ``edge-agent run``) and a ``Watcher``: a test-side MQTT client that publishes
deployment commands signed with the kit's control-plane key (``Watcher.desire``) or any
envelope (``Watcher.command``), and trust documents (``Watcher.publish_trust``), and
records what the device reports. ``det_inputs``, ``ort_run``, ``oip_infer``,
``outputs_of`` and ``assert_same`` compare what the agent serves over its local OIP REST
API with a direct ONNX Runtime run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent import Agent, config_from_mapping
from agent.selection.guard import DEFAULT_TOLERANCE, compare_outputs
from model_store import TrustDocument, build_bundle, load_metadata, load_private_key, sign_bundle
from protocol import (
    TRUST_TOPIC,
    Availability,
    DeploymentEvent,
    EventKind,
    ModelAssignment,
    SignedEnvelope,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.agent_process import write_config
from tests.support.blobserver import BlobServer, assignment_for, desired_state, sign_command
from tests.support.identity import report_of
from tests.support.mosquitto import Broker
from tests.support.onnx_models import two_input_model
from tests.support.raw_http import oip_body
from tests.support.trust import TrustKit, make_trust_kit

DEVICE = "store-eu-001"


@dataclass
class Watcher:
    """A test-side MQTT client: publishes desired states, records the device's reports."""

    broker: Broker
    signers: list[Any] = field(default_factory=list)
    events: list[DeploymentEvent] = field(default_factory=list)
    states: list[StateReport] = field(default_factory=list)
    availability: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-watcher")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.subscribe("edgefleet/v1/devices/+/+", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        with self.lock:
            if kind == TopicKind.EVENTS:
                self.events.append(report_of(DeploymentEvent, msg.payload))
            elif kind == TopicKind.STATE and msg.payload:
                self.states.append(report_of(StateReport, msg.payload))
            elif kind == TopicKind.AVAILABILITY and msg.payload:
                self.availability.append(report_of(Availability, msg.payload).online)

    def desire(
        self,
        generation: int,
        *models: ModelAssignment,
        device: str = DEVICE,
        trust_version: int = 1,
        expires_in: timedelta = timedelta(hours=1),
    ) -> SignedEnvelope:
        """Publish a deployment command signed with ``signers`` (the kit's cp key)."""
        state = desired_state(
            device, generation, *models, trust_version=trust_version, expires_in=expires_in
        )
        envelope = sign_command(state, self.signers)
        self.command(envelope, device=device)
        return envelope

    def command(self, envelope: SignedEnvelope, *, device: str = DEVICE) -> None:
        """Publish any envelope (retained) on the device's desired topic."""
        self.raw(encode(envelope), device=device)

    def publish_trust(self, document: TrustDocument | bytes) -> None:
        """Publish a trust document (retained) on the trust topic."""
        raw = document.raw() if isinstance(document, TrustDocument) else document
        self.client.publish(TRUST_TOPIC, raw, qos=1, retain=True).wait_for_publish(5)

    def raw(self, payload: bytes, *, device: str = DEVICE, retain: bool = True) -> None:
        topic = device_topic(device, TopicKind.DESIRED)
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def kinds(self, version: str) -> list[EventKind]:
        with self.lock:
            return [e.kind for e in self.events if e.model_version == version]

    def last_state(self) -> StateReport | None:
        with self.lock:
            return self.states[-1] if self.states else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Setup:
    """What ``open_setup`` yields: the kit, the blob server, the watcher, the broker."""

    tmp: Path
    kit: TrustKit
    blobs: BlobServer
    watcher: Watcher
    broker: Broker

    @property
    def key_path(self) -> Path:
        """The release key that signs bundles."""
        return self.kit.release_key

    def bundle(
        self,
        name: str,
        version: str,
        *,
        weight: float = 0.5,
        key: Path | None = None,
        build: Callable[..., Path] = two_input_model,
    ) -> Path:
        """A signed bundle of ``build`` (``two_input_model``'s signature) with ``weight``."""
        src = build(self.tmp / f"src-{version}" / "model.onnx", weight=weight)
        out = self.tmp / "bundles" / f"{name}-{version}"
        build_bundle(src, out, name=name, version=version)
        sign_bundle(out, load_private_key(key or self.kit.release_key))
        return out

    def assignment(self, bundle_dir: Path, deployment_id: int = 1) -> ModelAssignment:
        return assignment_for(self.blobs, bundle_dir, deployment_id=deployment_id)

    def process_config(self, data_dir: Path, **settings: Any) -> Path:
        """An agent.toml beside ``data_dir`` for ``edge-agent run`` as its own process
        (``tests.support.agent_process``), pinning the kit's root, provisioned with v1."""
        return write_config(
            data_dir.parent / f"{data_dir.name}.toml",
            {
                "device_id": DEVICE,
                "fleet": "store-eu",
                "broker_url": self.broker.url,
                "control_plane_url": self.blobs.url,
                "data_dir": str(data_dir),
                "root_keys": [str(self.kit.root_pub)],
                "trust": str(self.kit.trust_file),
                "local_api": "127.0.0.1:0",
                "heartbeat_interval_s": 1.0,
                "selection_budget_s": 3.0,  # a close call between backends: keep tests short
                **settings,
            },
        )

    def agent(
        self,
        data_dir: Path | None = None,
        *,
        retry_backoff_s: tuple[float, float] = (2.0, 60.0),
        trust_file: Path | None = None,
        provisioned: bool = True,
        facts: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Agent:
        """An agent pinning the kit's root key, provisioned with the v1 trust file (or
        ``trust_file``; none if not ``provisioned``: it fetches version 1)."""
        trust = str(trust_file or self.kit.trust_file) if provisioned else None
        config = config_from_mapping(
            {
                "device_id": DEVICE,
                "fleet": "store-eu",
                "broker_url": self.broker.url,
                "control_plane_url": self.blobs.url,
                "data_dir": str(data_dir or self.tmp / "agent-data"),
                "root_keys": [str(self.kit.root_pub)],
                "trust": trust,
                "local_api": "127.0.0.1:0",
                "heartbeat_interval_s": 0.5,
                "selection_budget_s": 3.0,  # a close call between backends: keep tests short
                **settings,
            }
        )
        facts = {"test": True} if facts is None else facts
        return Agent(config, facts=facts, retry_backoff_s=retry_backoff_s)


@contextmanager
def open_setup(tmp_path: Path, broker: Broker) -> Iterator[Setup]:
    """A trust kit, a blob server (serving trust v1) and a watcher around ``broker``."""
    kit = make_trust_kit(tmp_path / "trust")
    watcher = Watcher(broker, signers=[load_private_key(kit.cp_key)])
    try:
        with BlobServer() as blobs:
            blobs.serve_trust(kit.trust_file.read_bytes())
            yield Setup(tmp_path, kit, blobs, watcher, broker)
    finally:
        watcher.close()


def det_inputs(batch: int = 3) -> dict[str, np.ndarray]:
    """Seeded inputs of the two-input model: ``x`` (batch, 4) FP32, ``ids`` INT64."""
    rng = np.random.default_rng(7)
    return {
        "x": rng.standard_normal((batch, 4)).astype(np.float32),
        "ids": np.arange(batch, dtype=np.int64) + 5,
    }


def ort_run(bundle_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A direct ONNX Runtime run of the bundle's model file (not through the agent)."""
    model = bundle_dir / load_metadata(bundle_dir).model_file
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def oip_infer(agent: Agent | str, name: str, inputs: dict[str, np.ndarray]) -> httpx.Response:
    """A real HTTP OIP (KServe v2) JSON inference request to the agent's local API (an
    in-process agent's, or the base URL an agent process reports as ``local_api``)."""
    base = agent if isinstance(agent, str) else agent.local_api_url
    body = oip_body(inputs, id="req-1")
    return httpx.post(f"{base}/v2/models/{name}/infer", json=body, timeout=10)


def outputs_of(response: httpx.Response) -> dict[str, np.ndarray]:
    """The outputs of an OIP response, which must be a 200, as numpy arrays."""
    assert response.status_code == 200, response.text
    out = {}
    for t in response.json()["outputs"]:
        dtype = {"FP32": np.float32, "INT64": np.int64}[t["datatype"]]
        out[t["name"]] = np.asarray(t["data"], dtype=dtype).reshape(t["shape"])
    return out


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """The same output names, dtypes and values, exactly."""
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


def served_backend(agent: Agent, name: str) -> str:
    """The backend (candidate key) the agent's measured selection chose for model ``name``."""
    backends = [m.backend for m in agent.active if m.name == name]
    assert len(backends) == 1, [(m.name, m.backend) for m in agent.active]
    return backends[0]


def assert_close_to_reference(
    got: dict[str, np.ndarray],
    want: dict[str, np.ndarray],
    backend: str,
    *,
    rtol: float | None = None,
    atol: float = 1e-5,
) -> None:
    """Outputs served by ``backend`` against ONNX Runtime fp32's (``want``), whichever
    backend the measured selection picked. The same names and dtypes; from an fp32 backend
    the same values (exactly, or within ``rtol`` / ``atol``); from a reduced-precision one
    (bf16, f16: the selection keeps those that pass its accuracy guard) values within that
    guard (docs/agent.md, "Backend selection")."""
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
    if backend.endswith(":f32"):
        for name in want:
            if rtol is None:
                np.testing.assert_array_equal(got[name], want[name], err_msg=backend)
            else:
                np.testing.assert_allclose(
                    got[name], want[name], rtol=rtol, atol=atol, err_msg=backend
                )
        return
    error, why = compare_outputs(want, got, tolerance=DEFAULT_TOLERANCE)
    assert why is None, f"{backend}: {why} (relative error {error})"


def assert_served(
    agent: Agent, got: dict[str, np.ndarray], want: dict[str, np.ndarray], name: str = "det"
) -> None:
    """``got`` (served by ``agent`` for ``name``) against ONNX Runtime's ``want``, exactly
    when the selection chose an fp32 backend, else within the accuracy guard."""
    assert_close_to_reference(got, want, served_backend(agent, name))
