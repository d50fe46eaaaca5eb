"""Fit before install (issue 14, point 3): a model that does not fit the device is
refused, with its reason, before anything that serves is unloaded.

A real in-process agent, a real Mosquitto, a real HTTP blob server, real signed bundles
built in code, ONNX Runtime (pinned: the backend each test expects to load). The device
serves ``det`` and ``cls``; every command names the whole set, so nothing here depends
on what the agent does with a model a command drops.

- declared: ``ocr`` declares (``serving.memory_bytes``) more than the budget left: it is
  refused before any of its model bytes are downloaded; ``det`` and ``cls`` keep serving
  (the very same loaded models) and the state report carries the reason, the budget and
  what the loaded models take;
- measured: a new version of ``det`` declares little but holds a large table once
  loaded: it is unloaded before it serves, and ``det`` 1.0.0 answers every request
  meanwhile;
- disk: with a reserve larger than the disk (``disk_reserve_mb``), ``ocr`` is refused
  before any request, retried (space may be freed), and the others keep serving.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent import Agent
from model_store import build_bundle, load_private_key, sign_bundle
from protocol import DeploymentEvent, DeviceStatus, EventKind, ModelAssignment, StateReport
from tests.support.deploy import Setup, assert_same, det_inputs, oip_infer, ort_run, outputs_of
from tests.support.onnx_models import table_model, two_input_model
from tests.support.ports import wait_until

pytestmark = pytest.mark.integration

ORT = "onnxruntime:CPUExecutionProvider:f32"
MIB = 1024 * 1024


def _bundle(
    setup: Setup,
    name: str,
    version: str,
    *,
    weight: float,
    serving: dict[str, Any] | None = None,
    rows: int | None = None,
) -> Path:
    src = setup.tmp / "src" / f"{name}-{version}" / "model.onnx"
    if rows is None:
        two_input_model(src, weight=weight)
    else:
        table_model(src, rows=rows, weight=weight)
    out = setup.tmp / "bundles" / f"{name}-{version}"
    build_bundle(src, out, name=name, version=version, serving=serving)
    sign_bundle(out, load_private_key(setup.key_path))
    return out


def _assign(setup: Setup, bundle: Path, deployment_id: int) -> ModelAssignment:
    return setup.assignment(bundle, deployment_id).model_copy(update={"backend": ORT})


def _events(setup: Setup, name: str) -> list[DeploymentEvent]:
    with setup.watcher.lock:
        return [e for e in setup.watcher.events if e.model_name == name]


def _event(setup: Setup, name: str, version: str, kind: EventKind) -> DeploymentEvent:
    def found() -> DeploymentEvent | None:
        return next(
            (e for e in _events(setup, name) if e.model_version == version and e.kind is kind),
            None,
        )

    wait_until(lambda: found() is not None, 60, f"{name} {version} {kind}")
    event = found()
    assert event is not None
    return event


def _settled(setup: Setup, generation: int) -> StateReport:
    """The last state report of ``generation`` (one names a generation once processed)."""

    def found() -> StateReport | None:
        with setup.watcher.lock:
            return next(
                (s for s in reversed(setup.watcher.states) if s.generation == generation), None
            )

    wait_until(lambda: found() is not None, 60, f"a settled report of generation {generation}")
    state = found()
    assert state is not None
    return state


def _serves(agent: Agent, name: str, bundle: Path) -> None:
    """``name`` answers on the local OIP API with ONNX Runtime's outputs for ``bundle``."""
    inputs = det_inputs()
    assert_same(outputs_of(oip_infer(agent, name, inputs)), ort_run(bundle, inputs))


def _requested(setup: Setup, a: ModelAssignment) -> list[str]:
    """The blob requests made for any file of ``a`` (signature included)."""
    digests = {f.sha256 for f in (a.signature, *a.files)}
    return [path for path, _ in setup.blobs.requests if path.rsplit("/", 1)[-1] in digests]


def _two_serving(setup: Setup, agent: Agent) -> tuple[ModelAssignment, ModelAssignment]:
    det, cls = (
        _bundle(setup, "det", "1.0.0", weight=0.5),
        _bundle(setup, "cls", "1.1.0", weight=2.0),
    )
    a_det, a_cls = _assign(setup, det, 1), _assign(setup, cls, 2)
    setup.watcher.desire(1, a_det, a_cls)
    _event(setup, "det", "1.0.0", EventKind.ACTIVATED)
    _event(setup, "cls", "1.1.0", EventKind.ACTIVATED)
    _serves(agent, "det", det)
    _serves(agent, "cls", cls)
    return a_det, a_cls


def test_a_model_declared_too_large_is_refused_before_download_and_the_others_serve(
    setup: Setup,
) -> None:
    with setup.agent(memory_budget_mb=256) as agent:
        a_det, a_cls = _two_serving(setup, agent)
        loaded = {name: agent.models.get(name) for name in ("det", "cls")}

        ocr = _bundle(setup, "ocr", "3.0.0", weight=3.0, serving={"memory_bytes": 1 << 30})
        a_ocr = _assign(setup, ocr, 3)
        setup.watcher.desire(2, a_det, a_cls, a_ocr)
        failed = _event(setup, "ocr", "3.0.0", EventKind.FAILED)
        state = _settled(setup, 2)

        reason = failed.reason or ""
        assert reason.startswith("does not fit in memory: ocr 3.0.0 declares 1.0 GiB beside "), (
            reason
        )
        assert "cls 1.1.0 (" in reason and "det 1.0.0 (" in reason
        assert "over the device's 256.0 MiB budget (memory_budget_mb)" in reason
        assert "\n" not in reason
        # refused before its model file was downloaded (only the signature and metadata)
        model = next(f for f in a_ocr.files if f.path == "model.onnx")
        assert not any(model.sha256 in path for path in _requested(setup, a_ocr))
        # permanent: reported failed, never retrying
        assert EventKind.RETRYING not in [e.kind for e in _events(setup, "ocr")]
        assert not state.retrying and not agent.retrying

        # nothing that served changed: the very same loaded models answer
        for name, model_before in loaded.items():
            assert agent.models.get(name) is model_before
        _serves(agent, "det", setup.tmp / "bundles" / "det-1.0.0")
        _serves(agent, "cls", setup.tmp / "bundles" / "cls-1.1.0")
        assert (
            httpx.get(f"{agent.local_api_url}/v2/models/ocr/ready", timeout=10).status_code == 404
        )

        # the report: what serves, why ocr is not there, the budget and what is used
        assert state.status == DeviceStatus.ACTIVE
        assert [(m.name, m.version) for m in state.active] == [("cls", "1.1.0"), ("det", "1.0.0")]
        assert state.last_error == f"ocr 3.0.0: {reason}"
        assert state.memory_budget_bytes == 256 * MIB
        measured = [m.memory_bytes for m in state.active]
        assert all(m is not None for m in measured)
        assert state.memory_models_bytes == sum(m for m in measured if m is not None)


def test_a_version_that_takes_more_memory_once_loaded_is_unloaded_before_it_serves(
    setup: Setup,
) -> None:
    det1 = _bundle(setup, "det", "1.0.0", weight=0.5)
    # declares 1 MiB, holds a 128 MiB table once loaded
    det2 = _bundle(setup, "det", "2.0.0", weight=0.5, rows=32 * MIB, serving={"memory_bytes": MIB})
    with setup.agent(memory_budget_mb=96) as agent:
        setup.watcher.desire(1, _assign(setup, det1, 1))
        _event(setup, "det", "1.0.0", EventKind.ACTIVATED)
        _serves(agent, "det", det1)
        serving = agent.models.get("det")

        answers: list[int] = []
        stop = threading.Event()

        def client() -> None:
            inputs = det_inputs()
            while not stop.is_set():
                answers.append(oip_infer(agent, "det", inputs).status_code)

        thread = threading.Thread(target=client)
        thread.start()
        try:
            setup.watcher.desire(2, _assign(setup, det2, 2))
            failed = _event(setup, "det", "2.0.0", EventKind.FAILED)
            state = _settled(setup, 2)
        finally:
            stop.set()
            thread.join(30)

        reason = failed.reason or ""
        assert reason.startswith("does not fit in memory: det 2.0.0 measures "), reason
        assert "over the device's 96.0 MiB budget (memory_budget_mb)" in reason
        assert reason.endswith("; kept det 1.0.0"), reason  # it never served
        assert EventKind.ACTIVATED not in setup.watcher.kinds("2.0.0")
        # every request was answered, by 1.0.0, which was never unloaded
        assert answers and all(code == 200 for code in answers), set(answers)
        assert agent.models.get("det") is serving
        _serves(agent, "det", det1)
        assert [(m.name, m.version) for m in state.active] == [("det", "1.0.0")]
        assert state.status == DeviceStatus.ACTIVE and not state.retrying
        assert state.memory_budget_bytes == 96 * MIB


def test_a_model_that_does_not_fit_on_disk_is_refused_before_any_request(
    setup: Setup,
) -> None:
    data_dir = setup.tmp / "agent-data"
    with setup.agent(data_dir) as agent:
        a_det, a_cls = _two_serving(setup, agent)

    # the same device, restarted keeping more free space than its disk has
    reserve_mb = 1 << 30  # 1 PiB
    with setup.agent(data_dir, disk_reserve_mb=reserve_mb) as agent:
        _serves(agent, "det", setup.tmp / "bundles" / "det-1.0.0")
        ocr = _bundle(setup, "ocr", "3.0.0", weight=3.0)
        a_ocr = _assign(setup, ocr, 3)
        setup.watcher.desire(2, a_det, a_cls, a_ocr)
        retrying = _event(setup, "ocr", "3.0.0", EventKind.RETRYING)

        reason = (retrying.reason or "").partition("; retrying ")[0]
        assert reason.startswith(
            f"no space left on device while staging ocr 3.0.0: needs {a_ocr.size} bytes, "
        ), reason
        assert reason.endswith(f" free (keeping {reserve_mb * MIB} free: disk_reserve_mb)")
        assert _requested(setup, a_ocr) == []  # not even the signature
        assert not (data_dir / "staging" / a_ocr.bundle_digest).exists()

        _serves(agent, "det", setup.tmp / "bundles" / "det-1.0.0")
        _serves(agent, "cls", setup.tmp / "bundles" / "cls-1.1.0")
        state = _settled(setup, 2)
        assert [(m.name, m.version) for m in state.active] == [("cls", "1.1.0"), ("det", "1.0.0")]
        assert state.status == DeviceStatus.ACTIVE
        assert state.last_error is not None and state.last_error.startswith("ocr 3.0.0: ")
