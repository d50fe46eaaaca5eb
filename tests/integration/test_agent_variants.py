"""Per-hardware variants end to end: one model version as an ONNX file and an OpenVINO IR.

Real Mosquitto, a real control-plane process (SQLite, then PostgreSQL) and three real
agents whose host facts are the simulator's x86-avx2, xeon-amx and rpi5 boxes. The
x86 and Xeon profiles rank OpenVINO first, so those devices must install and serve the
IR; the Raspberry Pi ranks ONNX Runtime first and must get the ONNX file. Every device
must answer like the ONNX model run directly.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from sqlmodel import Session

from agent import Agent
from agent.config import config_from_mapping
from agent.simulator import fake_facts
from agent.simulator.enroll import api_enrollment
from controlplane.db import make_engine
from controlplane.models import Device
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    load_private_key,
    sha256_file,
    sign_bundle,
)
from protocol import DeviceStatus, FileRef
from tests.support.controlplane import (
    ControlPlaneProcess,
    SignedBundle,
    run_controlplane,
    upload_blobs,
)
from tests.support.deploy import assert_close_to_reference, served_backend
from tests.support.mosquitto import Broker
from tests.support.onnx_models import two_input_model
from tests.support.openvino_models import ir_from_onnx
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

FLEET = "lab"
#: device id -> (index of the simulator's fake host, profile, runtimes best first)
DEVICES = {
    "box-x86": (0, "x86-avx2", ["openvino", "onnxruntime"]),
    "box-xeon": (1, "xeon-amx", ["openvino", "onnxruntime"]),
    "box-rpi": (2, "rpi5", ["onnxruntime", "openvino"]),
}
OPENVINO_FIRST = {"box-x86", "box-xeon"}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ef-var-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(
    mosquitto: Broker, database_url: str, short_tmp: Path, trust_kit: TrustKit
) -> Iterator[tuple[ControlPlaneProcess, dict[str, Agent]]]:
    with ExitStack() as stack:
        cp = stack.enter_context(
            run_controlplane(
                short_tmp / "cp",
                mqtt_url=mosquitto.url,
                trust_kit=trust_kit,
                database_url=database_url,
            )
        )
        agents: dict[str, Agent] = {}
        enrollment = api_enrollment(cp.url, cp.token, FLEET)
        for device_id, (index, _, _) in DEVICES.items():
            config = config_from_mapping(
                {
                    "device_id": device_id,
                    "fleet": FLEET,
                    "broker_url": mosquitto.url,
                    "control_plane_url": cp.url,
                    "data_dir": str(short_tmp / device_id),
                    "root_keys": [str(trust_kit.root_pub)],
                    "trust": str(trust_kit.trust_file),
                    "local_api": "127.0.0.1:0",
                    "heartbeat_interval_s": 1.0,
                    "selection_budget_s": 1.0,  # keep the measured selection short
                    "enrollment_token": enrollment(device_id),
                }
            )
            agents[device_id] = stack.enter_context(Agent(config, facts=fake_facts(index)))
        yield cp, agents


def _bundle(workdir: Path, source: Path, version: str, kit: TrustKit) -> SignedBundle:
    directory = Path(tempfile.mkdtemp(dir=workdir)) / "bundle"
    build_bundle(source, directory, name="det", version=version)
    sig = sign_bundle(directory, load_private_key(kit.release_key))
    files = [FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(directory)]
    signature = FileRef(path=SIGNATURE_FILENAME, sha256=sha256_file(sig), size=sig.stat().st_size)
    return SignedBundle("det", version, directory, files, signature)


def _register(cp: ControlPlaneProcess, bundle: SignedBundle, variant: str | None = None) -> str:
    """Upload and register ``bundle`` (as ``variant``); its bundle digest."""
    body: dict[str, Any] = bundle.request() | ({"variant": variant} if variant else {})
    with cp.client(timeout=30) as http:
        upload_blobs(http, bundle)
        response = http.post("/api/v1/models/det/versions", json=body)
    assert response.status_code == 201, response.text
    answer = response.json()
    if variant is None:
        return str(answer["bundle_digest"])
    return str(next(v for v in answer["variants"] if v["variant"] == variant)["bundle_digest"])


def _deploy(cp: ControlPlaneProcess, version: str) -> int:
    with cp.client(timeout=30) as http:
        response = http.post(
            "/api/v1/deployments", json={"model": "det", "version": version, "fleet": FLEET}
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _runs(agents: dict[str, Agent], digests: dict[str, str]) -> bool:
    """Every agent serves det with the bundle digest ``digests`` names for it."""
    return all(
        agent.status == DeviceStatus.ACTIVE
        and [m.bundle_digest for m in agent.active] == [digests[device_id]]
        for device_id, agent in agents.items()
    )


def _infer(agent: Agent, x: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()},
            {"name": "ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.tolist()},
        ]
    }
    response = httpx.post(f"{agent.local_api_url}/v2/models/det/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    out = {}
    for tensor in response.json()["outputs"]:
        dtype = {"FP32": np.float32, "INT64": np.int64}[tensor["datatype"]]
        out[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    return out


def _assert_serves(agents: dict[str, Agent], onnx_path: Path) -> None:
    reference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for batch in (1, 4):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        ids = rng.integers(-100, 100, size=batch, dtype=np.int64)
        y, n = reference.run(["y", "n"], {"x": x, "ids": ids})
        for agent in agents.values():
            got, backend = _infer(agent, x, ids), served_backend(agent, "det")
            # measured selection may pick a bf16 candidate: within the accuracy guard then
            assert_close_to_reference(got, {"y": y, "n": n}, backend, rtol=1e-5, atol=1e-5)


def _assert_backends(agents: dict[str, Agent]) -> None:
    for device_id, agent in agents.items():
        (model,) = agent.active
        if device_id in OPENVINO_FIRST:  # an IR runs only on the OpenVINO runner
            assert model.backend.startswith("openvino:"), (device_id, model.backend)


def test_each_device_installs_and_serves_the_variant_its_profile_prefers(
    stack: tuple[ControlPlaneProcess, dict[str, Agent]],
    database_url: str,
    short_tmp: Path,
    trust_kit: TrustKit,
) -> None:
    cp, agents = stack
    for device_id, (_, profile, runtimes) in DEVICES.items():
        assert (agents[device_id].profile, agents[device_id].runtimes) == (profile, runtimes)
    engine = make_engine(database_url)

    def registered() -> dict[str, tuple[str | None, list[str], dict[str, str]]]:
        with Session(engine) as session:
            found = (session.get(Device, d) for d in DEVICES)
            return {d.id: (d.profile, d.runtimes, d.labels) for d in found if d is not None}

    try:
        expected = {
            d: (profile, runtimes, {"hw": profile}) for d, (_, profile, runtimes) in DEVICES.items()
        }
        wait_until(lambda: registered() == expected, 30, "devices to report their profiles")
    finally:
        engine.dispose()

    # 1.0.0 carries an ONNX default and an OpenVINO IR variant before it is deployed.
    v1 = two_input_model(short_tmp / "src1" / "onnx" / "det.onnx", weight=0.5)
    v1_onnx = _register(cp, _bundle(short_tmp, v1, "1.0.0", trust_kit))
    v1_ir = _register(
        cp,
        _bundle(
            short_tmp, ir_from_onnx(v1, short_tmp / "src1" / "ir" / "det.xml"), "1.0.0", trust_kit
        ),
        "openvino",
    )
    deployment = _deploy(cp, "1.0.0")
    want = {d: v1_ir if d in OPENVINO_FIRST else v1_onnx for d in DEVICES}
    wait_until(lambda: _runs(agents, want), 90, "each device to run its variant of 1.0.0")
    _assert_backends(agents)
    _assert_serves(agents, v1)
    with cp.client(timeout=10) as http:
        # The device reports the IR's digest; the control plane counts it as the version.
        wait_until(
            lambda: (
                {
                    t["status"]
                    for t in http.get(f"/api/v1/deployments/{deployment}").json()["targets"]
                }
                == {"activated"}
            ),
            30,
            "every target activated",
        )

    # 2.0.0 is deployed with its ONNX file only: every device runs ONNX. An IR registered
    # afterwards moves the OpenVINO-first devices onto it; the Pi's command is unchanged.
    v2 = two_input_model(short_tmp / "src2" / "onnx" / "det.onnx", weight=1.5)
    v2_onnx = _register(cp, _bundle(short_tmp, v2, "2.0.0", trust_kit))
    _deploy(cp, "2.0.0")
    wait_until(lambda: _runs(agents, dict.fromkeys(DEVICES, v2_onnx)), 90, "all to run 2.0.0")
    # a version serves a moment before its agent records the command's generation (the
    # second command each device got: 1.0.0's, then 2.0.0's)
    wait_until(lambda: agents["box-rpi"].generation == 2, 30, "the Pi to record 2.0.0's command")
    pi_generation = agents["box-rpi"].generation
    v2_ir = _register(
        cp,
        _bundle(
            short_tmp, ir_from_onnx(v2, short_tmp / "src2" / "ir" / "det.xml"), "2.0.0", trust_kit
        ),
        "openvino",
    )
    want = {d: v2_ir if d in OPENVINO_FIRST else v2_onnx for d in DEVICES}
    wait_until(lambda: _runs(agents, want), 90, "the OpenVINO-first devices to move to the IR")
    _assert_backends(agents)
    _assert_serves(agents, v2)
    assert agents["box-rpi"].generation == pi_generation
