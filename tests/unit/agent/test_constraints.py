"""unmet_constraints: one line per unmet constraint, over fake host facts and runner sets."""

from __future__ import annotations

from typing import Any

import pytest

from agent.selection.constraints import unmet_constraints
from hw_profiles.probe import HostFacts
from model_store.metadata import BundleConstraints, BundleMetadata

GIB = 1024**3
BOTH = ("onnxruntime", "openvino")
BIG_X86 = HostFacts(ram_bytes=16 * GIB, isa_flags=("avx2", "avx512f", "avx512_vnni")).to_dict()


def _meta(framework: str = "onnx", **constraints: Any) -> BundleMetadata:
    return BundleMetadata(
        name="det",
        version="1",
        framework=framework,
        model_file="det.xml" if framework == "openvino" else "det.onnx",
        inputs=[],
        outputs=[],
        constraints=BundleConstraints(**constraints) if constraints else None,
    )


def test_no_constraints_and_a_runner_means_nothing_unmet() -> None:
    assert unmet_constraints(_meta(), facts={}, runners=["onnxruntime"]) == []
    assert unmet_constraints(_meta("openvino"), facts={}, runners=BOTH) == []


def test_all_constraints_met() -> None:
    meta = _meta(
        "openvino", runtimes=["openvino"], min_ram_bytes=8 * GIB, cpu_flags=["avx2", "avx512f"]
    )
    assert unmet_constraints(meta, facts=BIG_X86, runners=BOTH) == []


def test_ir_needs_the_openvino_runner_even_without_constraints() -> None:
    assert unmet_constraints(_meta("openvino"), facts=BIG_X86, runners=["onnxruntime"]) == [
        "an OpenVINO IR model requires runtime 'openvino', which this agent does not have"
    ]


def test_required_runtime_missing() -> None:
    meta = _meta(runtimes=["openvino"])
    assert unmet_constraints(meta, facts=BIG_X86, runners=["onnxruntime"]) == [
        "requires runtime 'openvino', which this agent does not have"
    ]
    assert unmet_constraints(_meta(), facts=BIG_X86, runners=[]) == [
        "requires runtime 'onnxruntime' or 'openvino', which this agent does not have"
    ]
    assert unmet_constraints(_meta(), facts=BIG_X86, runners=["openvino"]) == []


def test_runtimes_that_cannot_serve_the_framework_or_an_unknown_framework() -> None:
    ir_on_ort = _meta("openvino", runtimes=["onnxruntime"])
    assert unmet_constraints(ir_on_ort, facts=BIG_X86, runners=BOTH) == [
        "requires runtimes ['onnxruntime'], none of which can serve framework 'openvino'"
    ]
    tflite = BundleMetadata(
        name="m", version="1", framework="tflite", model_file="m.tflite", inputs=[], outputs=[]
    )
    assert unmet_constraints(tflite, facts=BIG_X86, runners=BOTH) == [
        "framework 'tflite' is not supported by this agent (it serves onnx, openvino)"
    ]


def test_ram_below_minimum_or_unknown() -> None:
    meta = _meta(min_ram_bytes=8 * GIB)
    small = {**BIG_X86, "ram_bytes": 2 * GIB}
    assert unmet_constraints(meta, facts=small, runners=BOTH) == [
        "requires 8.0 GiB (8589934592 bytes) of RAM, but this host has 2.0 GiB (2147483648 bytes)"
    ]
    for unknown in ({}, {"ram_bytes": 0}, {"ram_bytes": "lots"}, {"ram_bytes": True}):
        assert unmet_constraints(meta, facts=unknown, runners=BOTH) == [
            "requires 8.0 GiB (8589934592 bytes) of RAM, but this agent could not measure its RAM"
        ]


def test_missing_cpu_flags() -> None:
    meta = _meta(cpu_flags=["avx2", "amx_tile", "amx_bf16"])
    assert unmet_constraints(meta, facts=BIG_X86, runners=BOTH) == [
        "requires CPU flags amx_tile, amx_bf16, which this CPU lacks"
    ]
    arm = HostFacts(ram_bytes=4 * GIB, isa_flags=("neon", "asimd")).to_dict()
    assert unmet_constraints(_meta(cpu_flags=["avx2"]), facts=arm, runners=BOTH) == [
        "requires CPU flag avx2, which this CPU lacks"
    ]
    assert unmet_constraints(_meta(cpu_flags=["neon"]), facts=arm, runners=BOTH) == []


def test_cpu_flags_the_agent_cannot_confirm() -> None:
    meta = _meta(cpu_flags=["sse4_2", "avx2"])
    no_cpuinfo = HostFacts(ram_bytes=GIB, probe_errors=("cpuinfo: OSError: nope",)).to_dict()
    assert unmet_constraints(meta, facts=no_cpuinfo, runners=BOTH) == [
        "requires CPU flag sse4_2, which this agent does not probe for",
        "requires CPU flag avx2, but this agent could not read its CPU flags",
    ]


@pytest.mark.parametrize("flags", [("avx2",), ["avx2"], "avx2"])
def test_flag_facts_may_be_any_sequence(flags: Any) -> None:
    facts = {"ram_bytes": GIB, "isa_flags": flags}
    assert unmet_constraints(_meta(cpu_flags=["avx2"]), facts=facts, runners=BOTH) == []


def test_every_unmet_constraint_is_reported_once_per_line() -> None:
    meta = _meta("openvino", min_ram_bytes=64 * GIB, cpu_flags=["amx_int8"])
    problems = unmet_constraints(meta, facts=BIG_X86, runners=["onnxruntime"])
    assert len(problems) == 3
    assert all("\n" not in line for line in problems)
    assert [p.split(" ")[0] for p in problems] == ["an", "requires", "requires"]
