"""Backend selection reports and operator pins through the control plane (issue 5).

A real uvicorn serves the app with its MQTT bridge on a private Mosquitto, on SQLite and
on PostgreSQL; bundles are real signed ONNX bundles; devices are the test's own paho
clients, and every published command is verified with the control-plane key the way an
agent does. ``edgectl`` runs in-process against the same server over HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session

from controlplane import crud
from controlplane.commands import publish_commands, reissue_commands
from controlplane.db import init_db
from controlplane.ingest import Ingester
from controlplane.models import Device, DeviceCommand, Fleet
from controlplane.publisher import MemoryPublisher
from edgectl.cli import main as edgectl
from protocol import (
    ActiveModel,
    CandidateFigures,
    DesiredState,
    DeviceStatus,
    SelectionReport,
    StateReport,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import (
    ADMIN_TOKEN,
    DET_V1_DIGEST,
    open_command,
    signer,
    state_report,
    upload_bundle,
)
from tests.support.identity import sealing
from tests.support.migrations import forget_migrations, revision
from tests.support.mqtt_plane import ControlPlane
from tests.support.onnx_models import affine_model
from tests.support.ports import wait_until
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

ORT = "onnxruntime:CPUExecutionProvider:f32"
OV_BF16 = "openvino:CPU:bf16"
OV_F32 = "openvino:CPU:f32"


def _report(cp: ControlPlane, device_id: str, fleet: str, **fields: Any) -> None:
    report = StateReport(
        device_id=device_id,
        fleet=fleet,
        agent_version="test",
        status=fields.pop("status", DeviceStatus.IDLE),
        generation=fields.pop("generation", 0),
        hardware={"cpu": {"model": "Xeon", "flags": ["avx512f", "amx_bf16"]}},
        **fields,
    )
    cp.send(device_id, TopicKind.STATE, encode(report), retain=True)
    wait_until(lambda: _reported_at(cp, device_id) == report.reported_at, 10, "report applied")


def _reported_at(cp: ControlPlane, device_id: str) -> datetime | None:
    at = (cp.device(device_id) or {}).get("last_report_at")
    return datetime.fromisoformat(at) if at else None


def _commands(cp: ControlPlane, device_id: str, count: int) -> list[DesiredState]:
    """Wait for the ``count``-th command of ``device_id``; every command received."""
    wait_until(lambda: len(cp.desired(device_id)) >= count, 10, f"command {count} of {device_id}")
    return cp.desired(device_id)


def _registered(cp: ControlPlane, device_id: str) -> dict[str, Any]:
    wait_until(lambda: cp.device(device_id) is not None, 10, f"{device_id} registered")
    device = cp.device(device_id)
    assert device is not None
    return device


def _deployed(cp: ControlPlane, devices: dict[str, str]) -> None:
    """Register ``devices`` (id -> fleet), then deploy det 1.0.0 to each fleet."""
    for device_id, fleet in devices.items():
        _report(cp, device_id, fleet)
        _registered(cp, device_id)
    assert upload_bundle(cp.http, cp.bundle("det", "1.0.0")).status_code == 201
    for fleet in sorted(set(devices.values())):
        body = {"model": "det", "version": "1.0.0", "fleet": fleet}
        assert cp.http.post("/api/v1/deployments", json=body).status_code == 201
    for device_id in devices:
        assert _commands(cp, device_id, 1)[-1].models[0].backend is None


def _pin(cp: ControlPlane, scope: str, name: str, backend: str | None) -> dict[str, Any]:
    response = cp.http.put(f"/api/v1/{scope}/{name}/pin", json={"backend": backend})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_selection_figures_and_hardware_show_up_in_the_device_api(cp: ControlPlane) -> None:
    selection = SelectionReport(
        chosen=OV_BF16,
        reason="lowest p50 (0.800 ms)",
        profile="xeon-amx",
        elapsed_s=6.5,
        candidates=[
            CandidateFigures(key=ORT, p50_ms=2.4, p99_ms=2.9, runs=300, rel_error=0.0),
            CandidateFigures(key=OV_BF16, p50_ms=0.8, p99_ms=1.1, runs=900, rel_error=0.004),
            CandidateFigures(key=OV_F32, p50_ms=None, p99_ms=None, excluded="load failed: x"),
        ],
    )
    active = ActiveModel(
        name="det", version="1.0.0", bundle_digest="ab" * 32, backend=OV_BF16, selection=selection
    )
    _report(cp, "dev-1", "f", status=DeviceStatus.ACTIVE, active=[active])
    device = _registered(cp, "dev-1")
    assert device["hardware"]["cpu"]["flags"] == ["avx512f", "amx_bf16"]
    assert device["backend"] == OV_BF16 and device["pin"] is None
    shown = device["selections"]["det"]
    assert shown == {
        "version": "1.0.0",
        "bundle_digest": "ab" * 32,
        "backend": OV_BF16,
        **selection.model_dump(mode="json"),
    }
    assert [c["key"] for c in shown["candidates"]] == [ORT, OV_BF16, OV_F32]
    assert shown["candidates"][2]["excluded"] == "load failed: x"
    listed = cp.http.get("/api/v1/devices", params={"fleet": "f"}).json()
    assert [d["selections"] for d in listed] == [device["selections"]]

    # the next report replaces them: an agent that reports no selection shows none
    _report(cp, "dev-1", "f", status=DeviceStatus.IDLE, generation=1)
    wait_until(lambda: (cp.device("dev-1") or {}).get("selections") == {}, 10, "cleared")


def test_fleet_and_device_pins_change_the_signed_commands(cp: ControlPlane) -> None:
    _deployed(cp, {"d1": "store", "d2": "store", "x1": "other"})

    pinned = _pin(cp, "fleets", "store", OV_BF16)
    assert pinned == {
        "fleet": "store",
        "device": None,
        "model": None,
        "backend": OV_BF16,
        "reissued": ["d1", "d2"],
    }
    for device_id in ("d1", "d2"):
        second = _commands(cp, device_id, 2)[-1]
        assert (second.generation, second.models[0].backend) == (2, OV_BF16)
        assert (
            second.models[0].bundle_digest == _commands(cp, device_id, 1)[0].models[0].bundle_digest
        )
    assert cp.http.get("/api/v1/fleets/store").json()["pinned_backend"] == OV_BF16
    # the device has not answered its new command yet
    expected = {
        "backend": OV_BF16,
        "source": "fleet",
        "for_model": False,
        "state": "waiting",
        "reason": None,
    }
    assert _registered(cp, "d1")["pin"] == expected
    assert _registered(cp, "x1")["pin"] is None

    # a device pin wins over the fleet's; the same pin again changes nothing
    assert _pin(cp, "devices", "d1", OV_F32)["reissued"] == ["d1"]
    assert _commands(cp, "d1", 3)[-1].models[0].backend == OV_F32
    assert _pin(cp, "devices", "d1", OV_F32)["reissued"] == []
    assert _registered(cp, "d1")["pin"] == expected | {"backend": OV_F32, "source": "device"}
    assert _registered(cp, "d1")["pinned_backend"] == OV_F32

    # a new fleet pin reaches only the device without a pin of its own
    assert _pin(cp, "fleets", "store", ORT)["reissued"] == ["d2"]
    assert _commands(cp, "d2", 3)[-1].models[0].backend == ORT

    # clearing the device pin falls back to the fleet's; clearing that, to measuring
    assert _pin(cp, "devices", "d1", None)["reissued"] == ["d1"]
    assert _commands(cp, "d1", 4)[-1].models[0].backend == ORT
    cleared = _pin(cp, "fleets", "store", None)
    assert cleared["backend"] is None and cleared["reissued"] == ["d1", "d2"]
    for device_id, count in (("d1", 5), ("d2", 4)):
        last = _commands(cp, device_id, count)[-1]
        assert last.models[0].backend is None and last.generation == count
    assert _registered(cp, "d1")["pin"] is None
    assert len(cp.desired("x1")) == 1  # another fleet's device was never touched

    # a device pinned before it has any deployment gets the pin with its first command
    _report(cp, "late", "lab")
    _registered(cp, "late")
    assert _pin(cp, "devices", "late", OV_BF16)["reissued"] == []
    body = {"model": "det", "version": "1.0.0", "fleet": "lab"}
    assert cp.http.post("/api/v1/deployments", json=body).status_code == 201
    assert _commands(cp, "late", 1)[-1].models[0].backend == OV_BF16


def test_a_pin_for_one_model_changes_only_that_model(
    cp: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14.1: each model of a device's set at its own backend pin: a pin for one
    model (fleet or device) is over the pin for every model of the same scope, and a
    device's pins win over its fleet's."""
    _deployed(cp, {"d1": "store", "d2": "store"})
    assert upload_bundle(cp.http, cp.bundle("cls", "2.0.0")).status_code == 201
    body = {"model": "cls", "version": "2.0.0", "fleet": "store"}
    assert cp.http.post("/api/v1/deployments", json=body).status_code == 201

    def backends(device_id: str, count: int) -> dict[str, str | None]:
        return {m.name: m.backend for m in _commands(cp, device_id, count)[-1].models}

    assert backends("d1", 2) == {"cls": None, "det": None}
    url = ["--url", str(cp.http.base_url), "--token", ADMIN_TOKEN]
    argv = ["pin", "set", "--fleet", "store", "--model", "cls", OV_F32, "--no-wait"]
    assert edgectl([*url, *argv]) == 0
    assert capsys.readouterr().out.strip() == (
        f"pinned model cls of fleet store to {OV_F32}; new command for 2 devices: d1, d2"
    )
    for device_id in ("d1", "d2"):
        assert backends(device_id, 3) == {"cls": OV_F32, "det": None}
    assert cp.http.get("/api/v1/fleets/store").json()["model_pins"] == {"cls": OV_F32}

    # a device's pin for every model wins over its fleet's pin for one
    assert _pin(cp, "devices", "d1", ORT)["reissued"] == ["d1"]
    assert backends("d1", 4) == {"cls": ORT, "det": ORT}
    # ... and its pin for one model over its own pin for every model
    pinned = cp.http.put("/api/v1/devices/d1/pin", json={"backend": OV_BF16, "model": "det"})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json() == {
        "fleet": None,
        "device": "d1",
        "model": "det",
        "backend": OV_BF16,
        "reissued": ["d1"],
    }
    assert backends("d1", 5) == {"cls": ORT, "det": OV_BF16}
    assert backends("d2", 3) == {"cls": OV_F32, "det": None}  # untouched

    # the device shows each model's pin and its answer once it reports them
    command = _commands(cp, "d1", 5)[-1]
    active = [
        ActiveModel(name="cls", version="2.0.0", bundle_digest="cd" * 32, backend=ORT),
        ActiveModel(name="det", version="1.0.0", bundle_digest=DET_V1_DIGEST, backend=ORT),
    ]
    _report(
        cp, "d1", "store", status=DeviceStatus.ACTIVE, generation=command.generation, active=active
    )
    device = _registered(cp, "d1")
    assert device["model_pins"] == {"det": OV_BF16} and device["pinned_backend"] == ORT
    pins = {m["name"]: m["pin"] for m in device["models"]}
    assert pins["cls"] == {
        "backend": ORT,
        "source": "device",
        "for_model": False,
        "state": "honoured",
        "reason": None,
    }
    assert pins["det"]["backend"] == OV_BF16 and pins["det"]["for_model"] is True
    assert pins["det"]["state"] == "not honoured" and pins["det"]["reason"] == f"runs {ORT}"
    assert edgectl([*url, "devices", "show", "d1"]) == 0
    shown = capsys.readouterr().out
    assert f"{OV_BF16} (device model), not honoured" in shown

    # clearing the model's pin falls back to the device's pin for every model
    assert edgectl([*url, "pin", "clear", "--device", "d1", "--model", "det"]) == 0
    assert capsys.readouterr().out.startswith("removed the backend pin of model det of device d1")
    assert backends("d1", 6) == {"cls": ORT, "det": ORT}
    # a bad model name is a one-line 422
    response = cp.http.put("/api/v1/fleets/store/pin", json={"backend": ORT, "model": "a b"})
    assert response.status_code == 422 and "body.model" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"backend": "openvino"}, "body.backend: String should match pattern"),
        ({"backend": "OpenVINO:CPU:f32"}, "body.backend: String should match pattern"),
        ({"backend": "openvino:CPU:f32\nx"}, "body.backend: String should match pattern"),
        ({"backend": "a:b:" + "c" * 130}, "body.backend: String should have at most 128"),
        ({"backend": 5}, "body.backend: Input should be a valid string"),
        ({}, "body.backend: Field required"),
    ],
)
def test_a_bad_pin_is_a_one_line_422(cp: ControlPlane, body: dict[str, Any], where: str) -> None:
    _report(cp, "d1", "store")
    _registered(cp, "d1")
    for url in ("/api/v1/fleets/store/pin", "/api/v1/devices/d1/pin"):
        response = cp.http.put(url, json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith(where) and "\n" not in detail
    assert cp.http.get("/api/v1/fleets/store").json()["pinned_backend"] is None


def test_pins_of_unknown_fleets_and_devices_are_404(cp: ControlPlane) -> None:
    for url, name in (("/api/v1/fleets/nope/pin", "fleet"), ("/api/v1/devices/nope/pin", "device")):
        response = cp.http.put(url, json={"backend": ORT})
        assert response.status_code == 404
        assert response.json() == {"detail": f"unknown {name} 'nope'"}
    assert cp.http.put("/api/v1/fleets/a+b/pin", json={"backend": ORT}).status_code == 422


def test_edgectl_pin_set_and_clear(cp: ControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    _deployed(cp, {"d1": "store"})
    url = ["--url", str(cp.http.base_url), "--token", ADMIN_TOKEN]
    # the test's device never answers: --no-wait (the next test waits for answers)
    assert edgectl([*url, "pin", "set", "--fleet", "store", OV_BF16, "--no-wait"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"pinned fleet store to {OV_BF16}; new command for 1 device: d1"
    assert _commands(cp, "d1", 2)[-1].models[0].backend == OV_BF16

    assert edgectl([*url, "pin", "set", "--device", "d1", OV_F32, "--json", "--no-wait"]) == 0
    assert json.loads(capsys.readouterr().out)["reissued"] == ["d1"]
    assert edgectl([*url, "pin", "clear", "--device", "d1"]) == 0
    assert capsys.readouterr().out.strip() == (
        "removed the backend pin of device d1; new command for 1 device: d1"
    )
    assert _commands(cp, "d1", 4)[-1].models[0].backend == OV_BF16  # the fleet's again
    assert edgectl([*url, "pin", "clear", "--fleet", "store"]) == 0
    assert _commands(cp, "d1", 5)[-1].models[0].backend is None
    capsys.readouterr()

    # a malformed key never reaches the server (exit 2); unknown names are refused (exit 1)
    for argv, code, fragment in (
        (["pin", "set", "--fleet", "store", "openvino-cpu"], 2, "invalid backend 'openvino-cpu'"),
        (["pin", "set", "--device", "ghost", ORT], 1, "unknown device 'ghost'"),
        (["pin", "clear", "--fleet", "ghost"], 1, "unknown fleet 'ghost'"),
    ):
        assert edgectl([*url, *argv]) == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgectl: error: ") and fragment in err[0]
    assert len(cp.desired("d1")) == 5


def test_edgectl_pin_set_waits_for_the_devices_answers(
    cp: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13.7: a pin a device cannot honour shows in ``pin set``'s own output (exit
    1), in ``devices list`` and in the API, once the devices answered."""
    _deployed(cp, {"d1": "store", "d2": "store", "d3": "store"})
    missing = f"pinned backend {OV_BF16} is not available here (have {ORT})"
    answers = {"d1": None, "d2": missing}  # d3 goes offline: it answers when it is back
    _report(cp, "d3", "store", generation=1)
    cp.send("d3", TopicKind.AVAILABILITY, b'{"device_id": "d3", "online": false}', retain=True)
    wait_until(lambda: not (cp.device("d3") or {}).get("online"), 10, "d3 offline")

    def answer() -> None:  # each device answers the command the pin made, as an agent does
        for device_id, error in answers.items():
            command = _commands(cp, device_id, 2)[-1]
            active = ActiveModel(
                name="det",
                version="1.0.0",
                bundle_digest=DET_V1_DIGEST,
                backend=OV_BF16 if error is None else ORT,
            )
            _report(
                cp,
                device_id,
                "store",
                generation=command.generation,
                active=[active],
                last_error=error,
            )

    devices = threading.Thread(target=answer)
    devices.start()
    url = ["--url", str(cp.http.base_url), "--token", ADMIN_TOKEN]
    code = edgectl([*url, "pin", "set", "--fleet", "store", OV_BF16, "--timeout", "30s"])
    devices.join()
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert out.splitlines() == [
        f"pinned fleet store to {OV_BF16}; new command for 3 devices: d1, d2, d3",
        "d1: honoured",
        f"d2: not honoured: {missing} (runs {ORT})",
        "d3: offline, it gets the pin when it reconnects",
    ]
    assert err.strip() == (f"edgectl: error: 1 of 3 devices cannot honour the pin {OV_BF16}: d2")
    # the same answers in the API and in devices list
    pins = {d["id"]: d["pin"] for d in cp.http.get("/api/v1/devices").json()}
    assert [pins[d]["state"] for d in ("d1", "d2", "d3")] == ["honoured", "not honoured", "waiting"]
    assert edgectl([*url, "devices", "list", "--fleet", "store"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert f"{OV_BF16}, not honoured" in listed["d2"] and f"{OV_BF16}, honoured" in listed["d1"]


def test_edgectl_push_signs_the_bundle_pin_and_tolerance(
    cp: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    model = affine_model(cp.workdir / "src" / "det.onnx")
    base = ["--url", str(cp.http.base_url), "--token", ADMIN_TOKEN, "push", "model", str(model)]
    base += ["--name", "det"]
    key = ["--key", str(cp.kit.release_key)]
    argv = [*base, "--version", "1.0.0", *key, "--pin", OV_F32, "--tolerance", "0.002"]
    assert edgectl(argv) == 0
    metadata = cp.http.get("/api/v1/models/det/versions/1.0.0").json()["metadata"]
    assert metadata["selection"] == {"pin": OV_F32, "tolerance": 0.002, "topk": None}
    capsys.readouterr()
    bad = [*base, "--version", "1.0.1", *key, "--tolerance", "2"]
    assert edgectl(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid selection: tolerance" in err[0], err
    assert cp.http.get("/api/v1/models/det/versions/1.0.1").status_code == 404


def test_new_columns_are_added_to_an_older_database(
    engine: Engine, trust_kit: TrustKit, caplog: pytest.LogCaptureFixture
) -> None:
    """A database created before pins and selection reports gets their columns at the next
    start-up; what it held keeps working, and its stored commands stay byte-identical."""
    cmd = signer(engine, trust_kit)
    publisher = MemoryPublisher()
    ingester = sealing(Ingester(engine, publisher, cmd), engine, cmd, trust_kit)
    ingester.handle(device_topic("d1", TopicKind.STATE), state_report("d1"))
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="f")
        assert publish_commands(session, cmd, publisher) == 1
    first = publisher.published[-1].raw
    added_columns = revision("0001").ADDED_COLUMNS
    with engine.begin() as conn:  # what a database of an earlier release looks like
        forget_migrations(conn)  # made before migrations existed
        for table, column, _ in added_columns:
            conn.execute(text(f'ALTER TABLE "{table}" DROP COLUMN "{column}"'))
    assert "selections" not in {c["name"] for c in inspect(engine).get_columns("device")}

    with caplog.at_level(logging.WARNING, logger="controlplane.migrations"):
        init_db(engine)  # the next start-up
        init_db(engine)  # and the one after: nothing left to do
    added = [r.getMessage() for r in caplog.records if "adding column" in r.getMessage()]
    assert len(added) == len(added_columns)
    for table, column, _ in added_columns:
        assert column in {c["name"] for c in inspect(engine).get_columns(table)}

    with Session(engine) as session:
        device, fleet = session.get(Device, "d1"), session.get(Fleet, "f")
        stored = session.get(DeviceCommand, "d1")
        assert device is not None and fleet is not None and stored is not None
        assert (device.selections, device.pinned_backend, fleet.pinned_backend) == ({}, None, None)
        assert stored.backend is None
        assert publish_commands(session, cmd, publisher) == 1
    assert publisher.published[-1].raw == first  # nothing changed: byte-identical
    # devices of a release before enrollment have no enrolled key: they enroll, then report
    ingester.enroll("d1")

    active = ActiveModel(
        name="det",
        version="1.0.0",
        bundle_digest=DET_V1_DIGEST,
        backend=ORT,
        selection=SelectionReport(chosen=ORT, reason="the only candidate", profile="generic"),
    )
    ingester.handle(
        device_topic("d1", TopicKind.STATE), state_report("d1", generation=1, active=[active])
    )
    assert ingester.stats.errors == 0
    with Session(engine) as session:
        crud.set_fleet_pin(session, name="f", backend=OV_BF16)
        assert reissue_commands(session, cmd, publisher, device_ids=["d1"]) == ["d1"]
        device = session.get(Device, "d1")
        assert device is not None and device.selections["det"]["chosen"] == ORT
    state = open_command(publisher.published[-1].raw, trust_kit)
    assert (state.generation, state.models[0].backend) == (2, OV_BF16)


def test_edgectl_devices_reselect_raises_the_counter_in_the_signed_command(
    cp: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    _deployed(cp, {"d1": "store", "d2": "store"})
    url = ["--url", str(cp.http.base_url), "--token", ADMIN_TOKEN]
    assert edgectl([*url, "devices", "reselect", "d1", "--model", "det"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "d1: re-selection 1 of model det asked; a new command sent"
    second = _commands(cp, "d1", 2)[-1]
    assert (second.generation, second.models[0].reselect) == (2, 1)
    assert second.models[0].bundle_digest == _commands(cp, "d1", 1)[0].models[0].bundle_digest
    # every model: the model's command carries its own count plus every model's
    assert edgectl([*url, "devices", "reselect", "d1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reissued"] == ["d1"]
    assert _commands(cp, "d1", 3)[-1].models[0].reselect == 2
    assert len(cp.desired("d2")) == 1  # another device was never touched
    # a plain-default variant's key is a valid pin (``+t1``)
    assert _pin(cp, "devices", "d2", f"{ORT}+t1")["reissued"] == ["d2"]
    assert _commands(cp, "d2", 2)[-1].models[0].backend == f"{ORT}+t1"
    assert edgectl([*url, "devices", "reselect", "ghost"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown device 'ghost'" in err[0]
    entries = cp.http.get("/api/v1/audit").json()
    entries = entries.get("items", entries) if isinstance(entries, dict) else entries
    assert any(e.get("action") == "device.reselect" for e in entries)
