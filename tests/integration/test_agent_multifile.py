"""Multi-file bundles through a real agent (issue 3, point 3): an OpenVINO IR (``.xml`` +
``.bin``) served by the OpenVINO runner, an ONNX model with external data, extra files
installed with the bundle, and hardware constraints refused before any model file is
downloaded.

Real Mosquitto, a real HTTP blob server, real signed bundles and deployment commands,
inference over the real OIP REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from agent import Agent
from model_store import (
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    build_bundle,
    bundle_files,
    load_metadata,
    load_private_key,
    sign_bundle,
)
from protocol import DeploymentEvent, DeviceStatus, EventKind, ModelAssignment
from tests.support.attacks import oip_outputs
from tests.support.deploy import Setup
from tests.support.onnx_models import external_data_model, two_input_model
from tests.support.openvino_models import two_input_ir
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration
GIB = 1024**3
#: made-up but complete host facts, so that only the bundle's own constraint can fail
FACTS: dict[str, Any] = {"ram_bytes": 16 * GIB, "isa_flags": ["avx2"], "probe_errors": []}


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "x": rng.standard_normal((4, 4)).astype(np.float32),
        "ids": np.array([1, 2, 30, 400], dtype=np.int64),
    }


def _onnxruntime(model: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def _signed(setup: Setup, source: Path, **build: Any) -> Path:
    out = setup.tmp / "bundles" / source.stem
    build_bundle(source, out, name="det", version="1.0.0", **build)
    sign_bundle(out, load_private_key(setup.kit.release_key))
    return out


def _event(setup: Setup, kind: EventKind) -> DeploymentEvent | None:
    with setup.watcher.lock:
        return next((e for e in setup.watcher.events if e.kind == kind), None)


def _deploy(setup: Setup, bundle: Path, **agent: Any) -> tuple[Agent, ModelAssignment]:
    """Command ``bundle`` (properly signed, generation 1) and start an agent for it."""
    a = setup.assignment(bundle)
    setup.watcher.desire(1, a)
    started = setup.agent(**agent)
    started.start()
    return started, a


def _activated(setup: Setup, agent: Agent, a: ModelAssignment) -> Path:
    """Wait for the activation; the installed bundle directory, holding every signed file."""
    wait_until(lambda: _event(setup, EventKind.ACTIVATED) is not None, 30, "ACTIVATED")
    assert _event(setup, EventKind.FAILED) is None
    assert agent.status == DeviceStatus.ACTIVE and agent.last_error is None
    installed = agent.config.data_dir / "models" / a.bundle_digest
    assert {f.path for f in bundle_files(installed)} == {f.path for f in a.files}
    assert (installed / SIGNATURE_FILENAME).is_file()
    for ref in a.files:  # every file was downloaded, once
        assert [p for p, _ in setup.blobs.requests].count(f"/api/v1/blobs/sha256/{ref.sha256}") == 1
    return installed


def test_openvino_ir_bundle_is_served_by_openvino(setup: Setup) -> None:
    xml, source_onnx = two_input_ir(setup.tmp / "ir" / "det.xml", weight=0.75)
    bundle = _signed(setup, xml)
    assert load_metadata(bundle).framework == "openvino"
    agent, a = _deploy(setup, bundle)
    try:
        installed = _activated(setup, agent, a)
        assert {f.path for f in a.files} == {"det.xml", "det.bin", METADATA_FILENAME}
        assert (installed / "det.bin").read_bytes() == (bundle / "det.bin").read_bytes()
        assert [(m.name, m.version, m.backend) for m in agent.active] == [
            ("det", "1.0.0", "openvino:CPU:f32")
        ]
        inputs = _inputs()
        got, want = oip_outputs(agent, "det", inputs), _onnxruntime(source_onnx, inputs)
        assert set(got) == set(want) == {"y", "n"}
        for name, expected in want.items():
            assert got[name].dtype == expected.dtype and got[name].shape == expected.shape
            np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)
    finally:
        agent.stop()


def test_onnx_external_data_bundle_deploys_and_serves(setup: Setup) -> None:
    model = external_data_model(setup.tmp / "ext" / "model.onnx", location="weights/w.data")
    bundle = _signed(setup, model)
    agent, a = _deploy(setup, bundle)
    try:
        installed = _activated(setup, agent, a)
        assert {f.path for f in a.files} == {"model.onnx", "weights/w.data", METADATA_FILENAME}
        weights = (installed / "weights" / "w.data").read_bytes()
        assert weights == (model.parent / "weights" / "w.data").read_bytes()
        # measured: either fp32 backend may win, a plain-default variant ("+t1") of one
        # included (outputs are checked against ORT below)
        [backend] = [m.backend for m in agent.active]
        assert backend.split("+")[0] in ("onnxruntime:CPUExecutionProvider:f32", "openvino:CPU:f32")
        inputs = _inputs()
        got, want = oip_outputs(agent, "det", inputs), _onnxruntime(model, inputs)
        assert set(got) == set(want)
        for name, expected in want.items():
            assert got[name].dtype == expected.dtype
            np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)
    finally:
        agent.stop()


def test_extra_file_is_installed_with_the_bundle(setup: Setup) -> None:
    model = two_input_model(setup.tmp / "src" / "model.onnx")
    labels = setup.tmp / "extras" / "labels.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("person\ncar\nbicycle\n")
    bundle = _signed(setup, model, extra_files=[labels])
    assert load_metadata(bundle).extra_files == ["labels.txt"]
    agent, a = _deploy(setup, bundle)
    try:
        installed = _activated(setup, agent, a)
        assert (installed / "labels.txt").read_text() == "person\ncar\nbicycle\n"
        inputs = _inputs()
        np.testing.assert_array_equal(
            oip_outputs(agent, "det", inputs)["y"], _onnxruntime(model, inputs)["y"]
        )
    finally:
        agent.stop()


CONSTRAINTS: dict[str, tuple[dict[str, Any], str]] = {
    "cpu flag": (
        {"cpu_flags": ["not_a_real_flag"]},
        "requires CPU flag not_a_real_flag, which this agent does not probe for",
    ),
    "ram": (
        {"min_ram_bytes": 10**15},
        "requires 931322.6 GiB (1000000000000000 bytes) of RAM, "
        "but this host has 16.0 GiB (17179869184 bytes)",
    ),
}


@pytest.mark.parametrize("constraint", sorted(CONSTRAINTS))
def test_unmet_constraints_are_refused_before_any_model_file_is_downloaded(
    setup: Setup, constraint: str
) -> None:
    """A multi-file bundle (external data + labels) this host cannot run: only the
    signature and ``edgefleet.json`` are fetched, then it is refused with the reason."""
    constraints, expected = CONSTRAINTS[constraint]
    model = external_data_model(setup.tmp / "ext" / "model.onnx")
    labels = setup.tmp / "extras" / "labels.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("person\n")
    bundle = _signed(setup, model, constraints=constraints, extra_files=[labels])
    agent, a = _deploy(setup, bundle, facts=FACTS)
    try:
        wait_until(lambda: _event(setup, EventKind.FAILED) is not None, 20, "FAILED")
        event = _event(setup, EventKind.FAILED)
        assert event is not None and event.reason is not None
        assert event.reason == f"cannot meet bundle constraints: {expected}", event.reason
        wait_until(lambda: agent.last_error == f"det 1.0.0: {event.reason}", 10, "last_error")
        blobs = [p.rsplit("/", 1)[1] for p, _ in setup.blobs.requests if "/blobs/" in p]
        metadata = next(f for f in a.files if f.path == METADATA_FILENAME)
        assert sorted(blobs) == sorted([a.signature.sha256, metadata.sha256])
        assert len(a.files) == 4  # model.onnx, its data, labels.txt: none of them fetched
        data = agent.config.data_dir
        assert not (data / "models").exists() or not any((data / "models").iterdir())
        assert not (data / "staging").exists() or not any((data / "staging").iterdir())
        assert agent.active == [] and agent.status == DeviceStatus.FAILED
        assert _event(setup, EventKind.DOWNLOADED) is None
    finally:
        agent.stop()
