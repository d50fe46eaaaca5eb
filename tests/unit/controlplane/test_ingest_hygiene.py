"""Report hygiene: what a forged or broken report can no longer do to the control plane.

Every test feeds real wire payloads to the real ingester on a real SQLite database and
checks what lands in the rows, the ingestion counters, the log, and what the rollout
health gate decides from the stored figures.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.ingest import MAX_CLOCK_SKEW, Ingester
from controlplane.models import Device
from controlplane.publisher import MemoryPublisher
from controlplane.rollouts.policy import Figures, Gate, judge
from controlplane.rollouts.rows import figures
from protocol import (
    MAX_INT64,
    MAX_REPORT_BYTES,
    DeploymentEvent,
    EventKind,
    TopicKind,
    device_topic,
    encode,
)
from tests.support.controlplane import register_version, state_report

STATE = device_topic("d1", TopicKind.STATE)
BEAT = device_topic("d1", TopicKind.HEARTBEAT)
EVENTS = device_topic("d1", TopicKind.EVENTS)
GATE = Gate(min_requests=100, error_rate_pct=1.0, no_traffic_timeout_s=300.0)


def _now() -> datetime:
    return datetime.now(UTC)


def heartbeat(at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """A heartbeat as an agent sends it (JSON object), ``fields`` overriding."""
    beat: dict[str, Any] = {
        "device_id": "d1",
        "at": (at or _now()).isoformat(),
        "cpu_percent": 5.0,
        "rss_bytes": 1 << 20,
        "mem_total_bytes": 1 << 30,
        "mem_available_bytes": 1 << 29,
        "mem_percent": 50.0,
        "load_avg": [0.1, 0.1, 0.1],
        "uptime_s": 60.0,
    }
    return beat | fields


def served(requests: int, errors: int = 0, **more: Any) -> dict[str, Any]:
    """det 2.0.0's figures in a heartbeat's ``models``."""
    return {
        "name": "det",
        "version": "2.0.0",
        "backend": "onnxruntime:CPUExecutionProvider:f32",
        "requests": requests,
        "errors": errors,
        "p50_ms": 4.0,
        "p95_ms": 9.0,
        "p99_ms": 12.0,
    } | more


def wire(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def report(device_id: str = "d1", fleet: str = "f", **fields: Any) -> bytes:
    """A state report's wire form with ``fields`` set as they are (not validated here)."""
    message: dict[str, Any] = json.loads(state_report(device_id, fleet))
    return wire(message | fields)


def device(engine: Engine, device_id: str = "d1") -> Device:
    with Session(engine) as session:
        found = session.get(Device, device_id)
        assert found is not None, f"{device_id} is not registered"
        return found


def verdict(engine: Engine) -> tuple[str, str | None]:
    """The gate's verdict on d1 serving det 2.0.0 for 10 minutes, from its stored figures."""
    observed = Figures.from_json(figures(device(engine), "det", "2.0.0"))
    baseline = Figures(requests=500, errors=0, p95_ms=9.0)
    now = _now()
    return judge(GATE, baseline, observed, now - timedelta(minutes=10), now)


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


# -- clocks -----------------------------------------------------------------------------


def test_a_heartbeat_from_the_future_is_rejected_and_real_ones_still_count(
    ingester: Ingester, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen: a heartbeat dated a year ahead froze the device's figures, so a gated
    rollout later passed it as "not judged: no traffic" although it served 107."""
    caplog.set_level(logging.WARNING, logger="controlplane")
    ingester.handle(STATE, state_report("d1"))
    year_ahead = _now() + timedelta(days=365)
    ingester.handle(BEAT, wire(heartbeat(year_ahead, models=[served(3)])))
    assert ingester.stats.rejected == 1 and ingester.stats.applied == 1
    assert device(engine).last_heartbeat is None
    (line,) = warnings(caplog, "rejected heartbeat from d1")
    assert "ahead of the control plane's clock" in line and "\n" not in line

    ingester.handle(BEAT, wire(heartbeat(models=[served(107)])))
    assert figures(device(engine), "det", "2.0.0") == {
        "requests": 107,
        "errors": 0,
        "p95_ms": 9.0,
    }
    assert verdict(engine) == ("pass", None)


def test_reports_and_events_from_the_future_are_rejected(
    ingester: Ingester, engine: Engine
) -> None:
    ahead = _now() + MAX_CLOCK_SKEW + timedelta(minutes=1)
    ingester.handle(STATE, report(reported_at=ahead.isoformat()))
    assert ingester.stats.rejected == 1
    with Session(engine) as session:
        device = session.get(Device, "d1")  # enrolled, but the report was not believed
        assert device is not None and device.last_report_at is None

    register_version(engine, "det", "2.0.0")
    ingester.handle(STATE, state_report("d1"))
    with Session(engine) as session:
        deployment, _, _ = crud.create_deployment(session, model="det", version="2.0.0", fleet="f")
    event = DeploymentEvent(
        device_id="d1",
        deployment_id=deployment.id,
        generation=1,
        model_name="det",
        model_version="2.0.0",
        kind=EventKind.FAILED,
        reason="forged",
        at=ahead,
    )
    ingester.handle(EVENTS, encode(event))
    assert ingester.stats.rejected == 2
    with Session(engine) as session:
        assert deployment.id is not None
        target = crud.get_target(session, deployment_id=deployment.id, device_id="d1")
        assert target is not None and target.status == "pending"


def test_a_fast_device_clock_within_the_skew_never_holds_later_heartbeats_back(
    ingester: Ingester, engine: Engine
) -> None:
    ingester.handle(STATE, state_report("d1"))
    ingester.handle(BEAT, wire(heartbeat(_now() + timedelta(minutes=4), models=[served(5)])))
    kept = device(engine)
    assert kept.last_heartbeat is not None and kept.last_heartbeat_at is not None
    assert kept.last_heartbeat_at.replace(tzinfo=UTC) <= _now()  # placed when it arrived
    # the device's clock is set right: its next heartbeat is dated a little earlier
    ingester.handle(BEAT, wire(heartbeat(_now() + timedelta(seconds=1), models=[served(150)])))
    assert figures(device(engine), "det", "2.0.0") == {"requests": 150, "errors": 0, "p95_ms": 9.0}
    # a spooled heartbeat delivered late still never replaces newer figures
    ingester.handle(BEAT, wire(heartbeat(_now() - timedelta(minutes=5), models=[served(1)])))
    assert figures(device(engine), "det", "2.0.0") == {"requests": 150, "errors": 0, "p95_ms": 9.0}
    assert ingester.stats.rejected == 0 and ingester.stats.applied == 4


def test_a_future_time_stored_before_the_fix_does_not_freeze_the_device(
    ingester: Ingester, engine: Engine
) -> None:
    ingester.handle(STATE, state_report("d1"))
    with Session(engine) as session:  # what a forged heartbeat left behind
        row = session.get(Device, "d1")
        assert row is not None
        row.last_heartbeat_at = _now() + timedelta(days=365)
        session.add(row)
        session.commit()
    ingester.handle(BEAT, wire(heartbeat(models=[served(107)])))
    assert verdict(engine) == ("pass", None)


def test_a_timestamp_without_a_timezone_is_malformed(ingester: Ingester, engine: Engine) -> None:
    ingester.handle(STATE, state_report("d1"))
    ingester.handle(BEAT, wire(heartbeat()))
    naive = heartbeat() | {"at": "2020-01-01T00:00:00"}
    ingester.handle(BEAT, wire(naive))
    assert ingester.stats.malformed == 1 and ingester.stats.errors == 0


# -- fleet membership -------------------------------------------------------------------


def test_a_state_report_cannot_move_a_device_to_another_fleet(
    ingester: Ingester,
    engine: Engine,
    publisher: MemoryPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen: a forged state report moved a device into a new fleet ``evil``."""
    caplog.set_level(logging.WARNING, logger="controlplane")
    register_version(engine, "det", "1.0.0")
    ingester.handle(device_topic("d2", TopicKind.STATE), state_report("d2", "other"))
    with Session(engine) as session:
        crud.create_deployment(session, model="det", version="1.0.0", fleet="other")
    ingester.handle(STATE, state_report("d1", "f"))

    for claimed in ("evil", "evil", "other"):
        ingester.handle(STATE, state_report("d1", claimed, generation=0))
    assert device(engine).fleet == "f"
    with Session(engine) as session:
        assert [(f.name, n) for f, n in crud.list_fleets(session)] == [("f", 1), ("other", 1)]
    assert publisher.latest("d1") is None  # not given fleet "other"'s deployment
    assert ingester.stats.applied == 5 and ingester.stats.rejected == 0
    lines = warnings(caplog, "device d1 reports fleet")
    assert len(lines) == 2, lines  # once per claim, not once per report
    assert "'evil'" in lines[0] and "'other'" in lines[1] and "belongs to fleet 'f'" in lines[0]


def test_the_first_report_still_registers_the_device_in_its_fleet(
    ingester: Ingester, engine: Engine
) -> None:
    ingester.handle(STATE, state_report("d1", "store-eu"))
    assert device(engine).fleet == "store-eu"
    with Session(engine) as session:
        assert [f.name for f, _ in crud.list_fleets(session)] == ["store-eu"]


# -- sizes ------------------------------------------------------------------------------


def test_a_report_over_max_report_bytes_is_dropped_before_parsing(
    ingester: Ingester, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen: 20 heartbeats of 15 MB took the control plane from 127 MB to 1.49 GB."""
    caplog.set_level(logging.WARNING, logger="controlplane")
    ingester.handle(STATE, state_report("d1"))
    padding = "x" * MAX_REPORT_BYTES
    big = heartbeat(temperatures=[{"sensor": padding, "label": "0", "celsius": 40.0}])
    ingester.handle(BEAT, wire(big))
    assert ingester.stats.malformed == 1 and device(engine).last_heartbeat is None
    (line,) = warnings(caplog, "MAX_REPORT_BYTES")
    assert BEAT in line and f"({MAX_REPORT_BYTES})" in line
    # the bound is on the wire bytes: a sealed report (base64 inside its envelope) that fits
    body = wire(heartbeat(pad="x"))
    body = body[:-1] + b" " * (MAX_REPORT_BYTES * 3 // 4 - 1024 - len(body)) + b"}"
    just_fits = ingester.seal(BEAT, body)
    assert MAX_REPORT_BYTES * 0.95 < len(just_fits) <= MAX_REPORT_BYTES
    ingester.ingester.handle(BEAT, just_fits)
    assert ingester.stats.malformed == 1 and device(engine).last_heartbeat is not None


def test_free_text_is_cut_and_oversized_lists_and_objects_are_malformed(
    ingester: Ingester, engine: Engine
) -> None:
    long = "e" * 50_000
    ingester.handle(STATE, report(last_error=long))
    error = device(engine).last_error
    assert error is not None and len(error) == 1024 and error.endswith("…")
    sensors = [{"sensor": "s" * 500, "label": str(i), "celsius": 40.0} for i in range(100)]
    ingester.handle(BEAT, wire(heartbeat(temperatures=sensors)))
    stored = device(engine).last_heartbeat
    assert stored is not None and len(stored["temperatures"]) == 64
    assert len(stored["temperatures"][0]["sensor"]) == 64
    assert ingester.stats.malformed == 0

    too_many_models = [served(1) | {"version": str(i)} for i in range(65)]
    ingester.handle(BEAT, wire(heartbeat(models=too_many_models)))
    kinds = {f"kind{i}": 1 for i in range(17)}
    ingester.handle(BEAT, wire(heartbeat(models=[served(1, errors_by_kind=kinds)])))
    ingester.handle(BEAT, wire(heartbeat(models=[served(1) | {"name": "n" * 129}])))
    hardware = {"probe_errors": ["x" * 1000] * 20}
    ingester.handle(STATE, report(hardware=hardware, generation=1))
    assert ingester.stats.malformed == 4
    assert device(engine).reported_generation == 0


# -- ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (BEAT, heartbeat(rss_bytes=2**70)),
        (BEAT, heartbeat(models=[served(MAX_INT64 + 1)])),
        (BEAT, heartbeat(models=[served(10, errors=-1)])),
        (BEAT, heartbeat(spool_dropped=MAX_INT64 + 1)),
        (BEAT, heartbeat(cpu_percent=-5.0)),
        (STATE, json.loads(report(protocol_version=2**40))),
        (
            EVENTS,
            {
                "device_id": "d1",
                "deployment_id": MAX_INT64 + 1,
                "generation": 1,
                "model_name": "det",
                "model_version": "2.0.0",
                "kind": "failed",
            },
        ),
    ],
    ids=["rss", "requests", "negative", "spool", "cpu", "protocol", "deployment-id"],
)
def test_ids_and_counters_out_of_range_are_malformed_not_database_errors(
    ingester: Ingester, engine: Engine, topic: str, payload: dict[str, Any]
) -> None:
    ingester.handle(STATE, state_report("d1"))
    ingester.handle(topic, wire(payload))
    assert (ingester.stats.malformed, ingester.stats.errors) == (1, 0)
    assert device(engine).last_heartbeat is None


# -- the error-rate gate ----------------------------------------------------------------


def test_a_clients_bad_requests_never_trip_the_error_rate_gate(
    ingester: Ingester, engine: Engine
) -> None:
    """Seen: 4xx answers (``invalid_input``) counted as model errors in the gate."""
    ingester.handle(STATE, state_report("d1"))
    kinds = {"invalid_input": 150, "inference": 0}
    # what today's agents send: invalid_input counted in ``errors``
    older = served(300, 150, errors_by_kind=kinds)
    ingester.handle(BEAT, wire(heartbeat(models=[older])))
    assert verdict(engine) == ("pass", None)
    stored = device(engine).last_heartbeat
    assert stored is not None
    assert (stored["models"][0]["errors"], stored["models"][0]["client_errors"]) == (0, 150)

    # what agents send from now on: the client's errors apart
    ingester.handle(BEAT, wire(heartbeat(models=[served(300, 0, client_errors=150)])))
    assert figures(device(engine), "det", "2.0.0") == {"requests": 150, "errors": 0, "p95_ms": 9.0}
    assert verdict(engine) == ("pass", None)

    # model and server errors still trip it
    failing = served(300, 10, client_errors=150, errors_by_kind=kinds | {"inference": 10})
    ingester.handle(BEAT, wire(heartbeat(models=[failing])))
    decision, reason = verdict(engine)
    assert decision == "regressed" and reason is not None
    assert reason.startswith("error rate 6.7%"), reason  # 10 of the 150 served


def test_only_a_clients_bad_requests_is_no_traffic_for_the_gate(
    ingester: Ingester, engine: Engine
) -> None:
    ingester.handle(STATE, state_report("d1"))
    ingester.handle(BEAT, wire(heartbeat(models=[served(500, 0, client_errors=500)])))
    assert verdict(engine) == ("pass", "not judged: no traffic")
