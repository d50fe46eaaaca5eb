"""Per-model views of a device (issue 14 point 6): the state report's models and memory
as the control plane keeps them, the API shape with heartbeat figures and headroom, the
dashboard's device page and edgectl's list/show cells."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.crud.device_models import device_memory, device_models
from controlplane.crud.reports import selections
from controlplane.dashboard.pages import device_page
from controlplane.models import Device
from controlplane.views import device_public
from edgectl.device_cmds import _headroom, _models_cell, render_device
from protocol import (
    ActiveModel,
    CandidateFigures,
    DeviceStatus,
    ModelFailure,
    SelectionReport,
    StateReport,
)

MIB = 2**20


def _report() -> StateReport:
    return StateReport(
        device_id="d1",
        fleet="f",
        agent_version="1",
        status=DeviceStatus.ACTIVE,
        generation=4,
        active=[
            ActiveModel(
                name="det",
                version="1.4.0",
                bundle_digest="aa" * 32,
                backend="onnxruntime:CPU:f32",
                memory_bytes=40 * MIB,
                priority="high",
                threads=2,
                concurrency=2,
            ),
            ActiveModel(name="cls", version="2.0.1", bundle_digest="bb" * 32, backend="b"),
        ],
        failures=[
            ModelFailure(name="ocr", version="3.0.0", reason="does not fit", retrying=False),
            ModelFailure(name="cls", version="2.1.0", reason="timed out", retrying=True),
        ],
        memory_budget_bytes=100 * MIB,
        memory_models_bytes=60 * MIB,
    )


def _device() -> Device:
    report = _report()
    heartbeat = {
        "models": [
            {"name": "det", "version": "1.4.0", "requests": 120, "errors": 1, "p95_ms": 7.5},
            {"name": "det", "version": "1.3.0", "requests": 999, "errors": 9, "p95_ms": 1.0},
        ]
    }
    return Device(
        id="d1",
        fleet="f",
        status="active",
        models=device_models(report),
        memory=device_memory(report),
        last_heartbeat=heartbeat,
        created_at=datetime(2026, 12, 5, tzinfo=UTC),
    )


def test_every_model_is_kept_with_its_state() -> None:
    found = {m["name"]: m for m in device_models(_report())}
    assert sorted(found) == ["cls", "det", "ocr"]
    assert (found["det"]["state"], found["det"]["threads"], found["det"]["priority"]) == (
        "active",
        2,
        "high",
    )
    # cls serves 2.0.1 while its 2.1.0 is retried: it is active, with the reason
    assert found["cls"]["state"] == "active" and found["cls"]["version"] == "2.0.1"
    assert found["cls"]["reason"] == "2.1.0 retrying: timed out"
    assert (found["ocr"]["state"], found["ocr"]["reason"]) == ("failed", "does not fit")
    assert device_memory(_report()) == {"budget_bytes": 100 * MIB, "models_bytes": 60 * MIB}


def test_the_api_adds_each_models_figures_and_the_headroom() -> None:
    public = device_public(_device())
    by_name = {m.name: m for m in public.models}
    assert (by_name["det"].requests, by_name["det"].errors, by_name["det"].p95_ms) == (
        120,
        1,
        7.5,
    )  # its own version's figures, not the older version's
    assert by_name["ocr"].requests is None
    assert public.memory is not None
    assert public.memory.headroom_bytes == 40 * MIB


def test_dashboard_and_edgectl_show_every_model() -> None:
    public = device_public(_device())
    html = str(device_page(public, now=datetime(2026, 12, 5, tzinfo=UTC)))
    for text in ("det", "cls", "ocr", "does not fit", "40.0 MiB headroom"):
        assert text in html, text
    as_json = public.model_dump(mode="json")
    assert _models_cell(as_json) == "cls 2.0.1, det 1.4.0, ocr 3.0.0 (failed)"
    assert _headroom(as_json) == "40.0 MiB"
    shown = render_device(as_json)
    # the header names every model (not one of them) and leaves backends to their lines
    assert "models:         cls 2.0.1, det 1.4.0, ocr 3.0.0 (failed)" in shown
    assert "backend:        per model, below" in shown
    assert not any(line.startswith("model:") for line in shown.splitlines())
    assert "60.0 MiB of 100.0 MiB budget, 40.0 MiB headroom" in shown
    assert "does not fit" in shown and "retrying: timed out" in shown


def test_a_device_of_an_older_agent_shows_its_one_model() -> None:
    device = {"active_model": "det", "active_version": "1.0.0", "models": [], "memory": None}
    assert _models_cell(device) == "det 1.0.0" and _headroom(device) == "-"


def test_dashboard_and_edgectl_show_every_candidate_of_a_selection() -> None:
    report = _report()
    chosen = "onnxruntime:CPUExecutionProvider:f32+t1"
    figures = [
        CandidateFigures(key="onnxruntime:CPUExecutionProvider:f32", p50_ms=0.0071, runs=900),
        CandidateFigures(key=chosen, p50_ms=0.0052, p99_ms=0.009, runs=950, rel_error=0.0),
        CandidateFigures(key="openvino:CPU:f32", excluded="not measured: the budget was spent"),
    ]
    det = report.active[0].model_copy(
        update={
            "backend": chosen,
            "selection": SelectionReport(
                chosen=chosen, reason="lowest p50", profile="x86-avx2", candidates=figures
            ),
        }
    )
    report = report.model_copy(update={"active": [det, *report.active[1:]]})
    device = _device()
    device.selections = selections(report)
    public = device_public(device)
    shown = render_device(public.model_dump(mode="json"))
    assert "selection of det 1.4.0: onnxruntime:CPUExecutionProvider:f32+t1 (measured" in shown
    rows = {line.lstrip("* ").split()[0]: line for line in shown.splitlines()[-3:]}
    assert rows[chosen].startswith("* ") and "0.005" in rows[chosen] and "950" in rows[chosen]
    assert "not measured: the budget was spent" in rows["openvino:CPU:f32"]
    html = str(device_page(public, now=datetime(2026, 12, 5, tzinfo=UTC)))
    for text in (chosen, "0.005 ms", "not measured: the budget was spent"):
        assert text in html, text
