"""Every field of every report is bounded, the bounds fit real devices, and the byte
limits hold what they must (``protocol.fields``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

import protocol as p
from protocol.fields import MAX_HARDWARE_BYTES, MAX_TEMPERATURES

SHA = "a" * 64
REPORTS: list[type[BaseModel]] = [p.StateReport, p.DeploymentEvent, p.Heartbeat, p.Availability]
#: Free-form objects bounded by a validator the schema cannot show (JSON bytes).
FREE_FORM = {"hardware"}


def _unbounded(schema: dict[str, Any], defs: dict[str, Any], where: str) -> list[str]:
    """Paths in a JSON schema where a string, array, object or integer has no bound."""
    if "$ref" in schema:
        return _unbounded(defs[schema["$ref"].rsplit("/", 1)[1]], defs, where)
    found: list[str] = []
    for option in schema.get("anyOf", []):
        found += _unbounded(option, defs, where)
    kind = schema.get("type")
    if kind == "string" and not (
        {"maxLength", "enum", "const"} & schema.keys() or schema.get("format") == "date-time"
    ):
        found.append(where)
    if kind == "integer" and not {"minimum", "maximum"} <= schema.keys():
        found.append(where)
    if kind == "array":
        if "prefixItems" in schema:
            for i, item in enumerate(schema["prefixItems"]):
                found += _unbounded(item, defs, f"{where}.{i}")
        elif "maxItems" not in schema:
            found.append(where)
        if "items" in schema:
            found += _unbounded(schema["items"], defs, f"{where}[]")
    if kind == "object":
        for name, prop in schema.get("properties", {}).items():
            found += _unbounded(prop, defs, f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if extra is not None and extra is not False:
            free = where.rsplit(".", 1)[-1] in FREE_FORM
            if "maxProperties" not in schema or not (free or isinstance(extra, dict)):
                found.append(where)
            if isinstance(extra, dict):
                found += _unbounded(extra, defs, f"{where}{{}}")
            if not free and "maxLength" not in schema.get("propertyNames", {}):
                found.append(f"{where} keys")
    return found


@pytest.mark.parametrize("message", REPORTS, ids=lambda m: m.__name__)
def test_every_field_of_every_report_is_bounded(message: type[BaseModel]) -> None:
    schema = message.model_json_schema()
    assert _unbounded(schema, schema.get("$defs", {}), message.__name__) == []


def _selection(candidates: int) -> p.SelectionReport:
    return p.SelectionReport(
        chosen="openvino:CPU:bf16",
        reason="lowest p50 (0.812 ms)",
        profile="xeon-amx",
        candidates=[
            p.CandidateFigures(
                key=f"openvino:GPU.{i}:f16", p50_ms=1.5, p99_ms=2.5, runs=300, excluded="e" * 512
            )
            for i in range(candidates)
        ],
    )


def test_a_busy_real_device_fits_well_within_max_report_bytes() -> None:
    """8 active models, each chosen among 8 candidates with long exclusion reasons, the
    probe's facts of a host with 8 GPUs; a heartbeat with 16 models and 64 sensors."""
    gpus = [{"name": f"NVIDIA L4 #{i}", "memory_mb": 23034, "driver": "550.54"} for i in range(8)]
    report = p.StateReport(
        device_id="store-eu-0001",
        fleet="store-eu",
        agent_version="1.2.3",
        status=p.DeviceStatus.ACTIVE,
        generation=2**40,
        active=[
            p.ActiveModel(
                name=f"model-{i}",
                version="1.4.0",
                bundle_digest=SHA,
                backend="openvino:CPU:bf16",
                deployment_id=12345,
                selection=_selection(8),
            )
            for i in range(8)
        ],
        last_error="x" * 5000,
        hardware={"cpu_model": "Intel Xeon", "isa_flags": ["avx512f"] * 40, "gpus": gpus},
    )
    assert len(p.encode(report)) < p.MAX_REPORT_BYTES / 2
    beat = p.Heartbeat(
        device_id="store-eu-0001",
        cpu_percent=50.0,
        rss_bytes=2**30,
        mem_total_bytes=2**36,
        mem_available_bytes=2**35,
        mem_percent=50.0,
        load_avg=(1.0, 1.0, 1.0),
        uptime_s=1e6,
        temperatures=[
            p.Temperature(sensor="coretemp", label=f"Core {i}", celsius=50.0) for i in range(200)
        ],
        models=[
            p.ModelMetrics(name=f"m{i}", version="1", backend="b", requests=1, errors=0)
            for i in range(16)
        ],
    )
    assert len(beat.temperatures) == MAX_TEMPERATURES  # cut, not refused
    assert len(p.encode(beat)) < p.MAX_REPORT_BYTES / 2


def test_the_broker_packet_limit_holds_the_largest_signed_envelope() -> None:
    envelope = p.SignedEnvelope(
        payload_type=p.DESIRED_STATE_PAYLOAD_TYPE,
        payload="A" * p.MAX_ENVELOPE_PAYLOAD,
        signatures=[p.EnvelopeSignature(keyid="k" * 128, sig="s" * 4096)] * 16,
    )
    topic = p.device_topic("d" * 128, p.TopicKind.DESIRED)
    mqtt_header = 5 + 2 + 2  # fixed header with a 4-byte length, topic length, packet id
    assert len(p.encode(envelope)) + len(topic) + mqtt_header < p.MAX_PACKET_BYTES
    assert p.MAX_REPORT_BYTES < p.MAX_PACKET_BYTES


def test_hardware_facts_are_bounded_in_bytes() -> None:
    fits = {"probe_errors": ["x" * 100] * 100}
    assert len(json.dumps(fits)) < MAX_HARDWARE_BYTES
    wire = json.loads(p.encode(p.Availability(device_id="d1", online=True)))
    base = wire | {"fleet": "f", "agent_version": "1", "status": "idle", "generation": 0}
    assert p.decode(p.StateReport, json.dumps(base | {"hardware": fits})).hardware == fits
    too_big = {"probe_errors": ["x" * 1000] * 20}
    with pytest.raises(p.ProtocolError, match="hardware"):
        p.decode(p.StateReport, json.dumps(base | {"hardware": too_big}))


def test_model_metrics_of_older_agents_count_invalid_input_as_client_errors() -> None:
    older = {"name": "det", "version": "1", "backend": "b", "requests": 10, "errors": 3}
    kinds = {"invalid_input": 2, "inference": 1}
    read = p.decode(p.ModelMetrics, json.dumps(older | {"errors_by_kind": kinds}))
    assert (read.requests, read.errors, read.client_errors) == (10, 1, 2)
    assert read.errors_by_kind == kinds
    plain = p.decode(p.ModelMetrics, json.dumps(older))  # no kinds: nothing to move
    assert (plain.errors, plain.client_errors) == (3, 0)
    newer = older | {"errors": 1, "client_errors": 2, "errors_by_kind": kinds}
    assert p.decode(p.ModelMetrics, json.dumps(newer)) == read
    assert p.decode(p.ModelMetrics, p.encode(read)) == read  # round trip: nothing moves twice
