"""Per-hardware variants: the pure choice of a device's variant, and the wire fields that
feed it (``StateReport.profile`` / ``runtimes``)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

import pytest

from controlplane.desired import Bundle
from controlplane.variant_choice import choose_variant, runs_natively
from protocol import DeviceStatus, ProtocolError, StateReport, decode, encode

#: The runtime orders the catalogue's profiles give (candidates' runtimes, each once).
XEON_AMX = ["openvino", "onnxruntime"]
RPI5 = ["onnxruntime", "openvino"]


@dataclass(frozen=True)
class V:
    name: str
    framework: str
    allowed_runtimes: Collection[str] | None = None


ONNX = V("default", "onnx")
IR = V("ir", "openvino")


@pytest.mark.parametrize(
    ("runtimes", "variants", "expected"),
    [
        (XEON_AMX, [ONNX, IR], IR),  # OpenVINO first: the IR
        (RPI5, [ONNX, IR], ONNX),  # ONNX Runtime first: the ONNX default
        (RPI5, [IR, V("fp32", "onnx")], V("fp32", "onnx")),  # IR default, ONNX variant
        (XEON_AMX, [ONNX], ONNX),  # no IR: OpenVINO falls to onnxruntime's native ONNX
        (["openvino"], [ONNX], ONNX),  # nothing native: the default (OpenVINO reads ONNX)
        ([], [ONNX, IR], ONNX),  # an older agent reports no runtimes
        (["tensorrt", "openvino"], [ONNX, IR], IR),  # unknown runtimes are skipped
    ],
)
def test_the_first_runtime_with_a_native_variant_wins(
    runtimes: list[str], variants: list[V], expected: V
) -> None:
    assert choose_variant(runtimes, variants) == expected


def test_among_native_variants_the_default_then_the_oldest_wins() -> None:
    int8, fp16 = V("int8", "onnx"), V("fp16", "onnx")
    assert choose_variant(RPI5, [ONNX, int8, fp16]) == ONNX
    assert choose_variant(RPI5, [IR, int8, fp16]) == int8


def test_bundle_constraints_limit_which_runtimes_a_variant_is_native_to() -> None:
    ort_openvino_only = V("ov-ep", "onnx", allowed_runtimes={"openvino"})
    assert not runs_natively("onnxruntime", ort_openvino_only)
    assert choose_variant(RPI5, [IR, ort_openvino_only]) == IR
    assert runs_natively("onnxruntime", V("ok", "onnx", allowed_runtimes={"onnxruntime"}))


def test_a_version_without_variants_is_refused() -> None:
    with pytest.raises(ValueError, match="at least its default"):
        choose_variant(XEON_AMX, [])


def test_bundles_read_framework_and_constraints_from_their_metadata() -> None:
    def bundle(metadata: dict[str, object]) -> Bundle:
        return Bundle("v", "ab" * 32, "cd" * 32, 10, [], metadata)

    ir = bundle({"framework": "openvino", "constraints": {"runtimes": ["openvino"]}})
    assert (ir.framework, ir.allowed_runtimes) == ("openvino", frozenset({"openvino"}))
    legacy = bundle({})  # metadata without a framework: ONNX, any runtime
    assert (legacy.framework, legacy.allowed_runtimes) == ("onnx", None)
    assert choose_variant(XEON_AMX, [legacy, ir]) is ir
    assert choose_variant(RPI5, [legacy, ir]) is legacy


def _report(**fields: object) -> StateReport:
    return StateReport(
        device_id="d1",
        fleet="f",
        agent_version="1",
        status=DeviceStatus.IDLE,
        generation=0,
        **fields,  # type: ignore[arg-type]
    )


def test_state_report_carries_profile_and_runtimes_round_trip() -> None:
    report = _report(profile="xeon-amx", runtimes=XEON_AMX)
    again = decode(StateReport, encode(report))
    assert (again.profile, again.runtimes) == ("xeon-amx", XEON_AMX)


def test_state_report_of_an_older_agent_has_no_profile() -> None:
    raw = b'{"device_id":"d1","fleet":"f","agent_version":"0.1","status":"idle","generation":3}'
    report = decode(StateReport, raw)
    assert (report.profile, report.runtimes) == (None, [])


@pytest.mark.parametrize(
    "fields",
    [{"profile": "x86 avx2"}, {"profile": "a" * 64}, {"runtimes": ["ONNX Runtime"]}],
)
def test_state_report_refuses_profile_and_runtime_names_outside_the_alphabet(
    fields: dict[str, object],
) -> None:
    raw = json.loads(encode(_report())) | fields
    with pytest.raises(ProtocolError, match="malformed StateReport"):
        decode(StateReport, json.dumps(raw))
