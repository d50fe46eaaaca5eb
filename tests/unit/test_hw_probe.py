"""Host probing never raises and returns sane types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw_profiles import probe
from hw_profiles.probe import HostFacts, parse_cpuinfo, probe_host

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model\t\t: 143
model name\t: Intel(R) Xeon(R) Gold 6430
flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_bf16 amx_int8
"""
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp
CPU part\t: 0xd0b

Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_probe_host_returns_sane_types() -> None:
    facts = probe_host()
    assert isinstance(facts, HostFacts)
    assert facts.logical_cores >= 1 and facts.ram_bytes > 0
    assert facts.arch and facts.os
    assert "CPUExecutionProvider" in facts.onnxruntime_providers
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in facts.openvino_devices.items())
    data = facts.to_dict()
    assert isinstance(data["isa_flags"], list)
    json.dumps(data)


def test_probe_host_survives_broken_probes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(probe, "CPUINFO", tmp_path / "missing")

    def boom() -> str:
        raise RuntimeError("no platform\nsecond line")

    monkeypatch.setattr(probe.platform, "machine", boom)
    facts = probe_host()
    assert facts.arch == "" and facts.isa_flags == ()
    assert any(e.startswith("cpuinfo:") for e in facts.probe_errors)
    assert "arch: RuntimeError: no platform" in facts.probe_errors


def test_parse_cpuinfo_x86_and_arm() -> None:
    assert parse_cpuinfo(X86) == (
        "Intel(R) Xeon(R) Gold 6430",
        ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"),
    )
    model, flags = parse_cpuinfo(PI5)
    assert model == "Raspberry Pi 5 Model B Rev 1.0"
    assert {"neon", "asimd", "asimddp"} <= set(flags)
    assert parse_cpuinfo("") == ("", ())
