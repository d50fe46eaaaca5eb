"""Host probing never raises and returns sane types; its parsers over recorded text."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from hw_profiles import (
    ISA_FLAGS_OF_INTEREST,
    GpuFacts,
    eligible_candidates,
    load_catalogue,
    match_profile,
    probe,
    runtimes,
)
from hw_profiles.parse import (
    drm_gpu,
    parse_device_tree_model,
    parse_nvidia_smi,
    parse_physical_cores,
    parse_tegra_release,
)
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


# -- the pure parsers, over recorded text ----------------------------------------------

JETSON = """processor\t: 0
model name\t: ARMv8 Processor rev 1 (v8l)
BogoMIPS\t: 62.50
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd42
CPU revision\t: 1
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
jscvt fcma lrcpc dcpop sha3 asimddp sha512 sve asimdfhm svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""
TWO_SOCKETS_HT = "".join(
    f"processor\t: {i}\nphysical id\t: {i // 4}\ncore id\t\t: {(i // 2) % 2}\nflags\t\t: avx2\n\n"
    for i in range(8)
)


def test_parse_cpuinfo_names_arm_cores_and_new_flags() -> None:
    assert parse_cpuinfo(JETSON) == (
        "ARM Cortex-A78AE",
        ("neon", "asimd", "asimddp", "asimdhp"),
    )
    model, flags = parse_cpuinfo(GRAVITON3)
    assert model == "ARM Neoverse-V1"
    assert {"sve", "bf16", "i8mm", "asimdhp", "neon"} <= set(flags)
    assert "svebf16" not in flags  # only whole flag names count
    unknown_part = GRAVITON3.replace("0xd40", "0xfff")
    assert parse_cpuinfo(unknown_part)[0] == ""


def test_parse_physical_cores() -> None:
    assert parse_physical_cores(TWO_SOCKETS_HT) == 4  # 2 sockets x 2 cores, 2 threads each
    assert parse_physical_cores(PI5) == 0  # arm64 cpuinfo has no core ids
    assert parse_physical_cores("") == 0


def test_parse_nvidia_smi() -> None:
    text = "NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15\nTesla T4, 15360, 535.183.01\n\n"
    assert parse_nvidia_smi(text) == (
        GpuFacts("NVIDIA H100 80GB HBM3", "nvidia", 81559, "550.54.15", "nvidia-smi"),
        GpuFacts("Tesla T4", "nvidia", 15360, "535.183.01", "nvidia-smi"),
    )
    assert parse_nvidia_smi("Orin (nvgpu), [N/A], 540.3.0")[0].memory_mb == 0
    assert parse_nvidia_smi("") == ()
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("No devices were found")


def test_parse_jetson_and_device_tree() -> None:
    release = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64\n"
    assert parse_tegra_release(release) == "R35.4.1"
    assert parse_tegra_release("# something new\n") == "something new"
    assert parse_tegra_release("") == ""
    assert parse_device_tree_model(b"Raspberry Pi 5 Model B Rev 1.0\x00") == (
        "Raspberry Pi 5 Model B Rev 1.0"
    )
    assert drm_gpu("0x8086\n", "0x7d55", "i915") == GpuFacts(
        "Intel GPU 0x7d55 (i915)", "intel", 0, "i915", "drm"
    )
    assert drm_gpu("", "", "v3d").name == "unknown GPU (v3d)"


# -- probe_host: real sources, and sources that fail ------------------------------------


def _fake_tool(directory: Path, name: str, script: str) -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    tool.chmod(0o755)


def test_probe_host_on_this_machine_is_sane() -> None:
    facts = probe_host()
    assert 1 <= facts.physical_cores <= facts.logical_cores
    assert facts.cpu_model and set(facts.isa_flags) <= set(ISA_FLAGS_OF_INTEREST)
    if facts.openvino_devices:  # OpenVINO is installed in the dev venv
        assert "CPU" in facts.openvino_devices
        assert "FP32" in facts.openvino_capabilities["CPU"]
    assert len(facts.fingerprint()) == 64 and facts.fingerprint() == probe_host().fingerprint()
    profile = match_profile(facts)
    assert profile.name in {p.name for p in load_catalogue()}
    assert "onnxruntime:CPUExecutionProvider:f32" in [
        c.key for c in eligible_candidates(profile, facts)
    ]
    assert HostFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_probe_reads_nvidia_smi_and_the_host_becomes_a_gpu_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_tool(tmp_path, "nvidia-smi", 'echo "NVIDIA L4, 23034 MiB, 535.183.01"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    facts = probe_host()
    assert facts.gpus[0] == GpuFacts("NVIDIA L4", "nvidia", 23034, "535.183.01", "nvidia-smi")
    assert not [e for e in facts.probe_errors if e.startswith("nvidia-smi")]
    assert match_profile(facts).name == "nvidia-gpu"


def test_failing_nvidia_smi_is_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_tool(tmp_path, "nvidia-smi", 'echo "NVIDIA-SMI has failed: driver mismatch" >&2; exit 9')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    facts = probe_host()
    assert facts.gpus == () or all(g.source == "drm" for g in facts.gpus)
    assert (
        "nvidia-smi: RuntimeError: exit status 9: NVIDIA-SMI has failed: driver mismatch"
        in facts.probe_errors
    )


def test_hanging_nvidia_smi_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_tool(tmp_path, "nvidia-smi", "exec sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(probe, "NVIDIA_SMI_TIMEOUT_S", 0.2)
    facts = probe_host()
    assert any(e.startswith("nvidia-smi: TimeoutExpired:") for e in facts.probe_errors)
    assert facts.cpu_model  # the other probes still ran


def test_a_broken_openvino_is_a_note_and_the_runtimes_load_only_in_the_probe_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The runtimes are asked in a child process (``hw_profiles.runtimes``): an openvino
    that fails to import there is a note, and this process imports neither runtime."""
    fake = tmp_path / "openvino"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ModuleNotFoundError('openvino driver missing')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    before = {m for m in ("onnxruntime", "openvino") if m in sys.modules}
    runtimes.probe_runtimes.cache_clear()
    try:
        facts = probe_host()
    finally:
        runtimes.probe_runtimes.cache_clear()
    assert facts.openvino_devices == {} and facts.openvino_version == ""
    assert "openvino: ModuleNotFoundError: openvino driver missing" in facts.probe_errors
    assert "CPUExecutionProvider" in facts.onnxruntime_providers
    assert {m for m in ("onnxruntime", "openvino") if m in sys.modules} == before


def test_a_crashing_runtime_probe_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "CHILD_MODULE", "hw_profiles.no_such_module")
    runtimes.probe_runtimes.cache_clear()
    try:
        facts = probe_host()
    finally:
        runtimes.probe_runtimes.cache_clear()
    assert facts.onnxruntime_providers == () and facts.cpu_model
    (note,) = [e for e in facts.probe_errors if e.startswith("runtimes:")]
    assert note.startswith("runtimes: the probe process failed: exit status 1: ")
    assert "\n" not in note


def test_probe_reads_board_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic\n")
    monkeypatch.setattr(probe, "DEVICE_TREE_MODELS", (tmp_path / "absent", model))
    monkeypatch.setattr(probe, "NV_TEGRA_RELEASE", release)
    facts = probe_host()
    assert facts.board_model == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts.jetson_release == "R36.3.0" and facts.is_jetson
    monkeypatch.setattr(probe, "NV_TEGRA_RELEASE", tmp_path / "absent")
    monkeypatch.setattr(probe, "DEVICE_TREE_MODELS", (tmp_path / "absent",))
    plain = probe_host()
    assert plain.board_model == "" and not plain.is_jetson
    assert not [e for e in plain.probe_errors if e.startswith(("device-tree", "nv_tegra"))]
