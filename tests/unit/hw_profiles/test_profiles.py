"""The profile catalogue and the pure matching, over recorded facts of every device class.

Each tests/data/hw_facts/*.json holds what the probe reads on a real host of one class
(the first /proc/cpuinfo block(s), the device tree model, /etc/nv_tegra_release and
nvidia-smi output where the class has them) plus what the runtimes report. ``recorded``
runs that text through the probe's own parsers, so "probe -> profile" is tested end to end
for every class without the hardware.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from hw_profiles import (
    CandidateSpec,
    GpuFacts,
    HostFacts,
    Profile,
    ProfileError,
    eligible_candidates,
    fingerprint,
    load_catalogue,
    match_profile,
    matching_profiles,
    parse_profile,
)
from hw_profiles.parse import (
    parse_cpuinfo,
    parse_device_tree_model,
    parse_nvidia_smi,
    parse_tegra_release,
)
from tests.support.paths import TEST_DATA

DATA = TEST_DATA / "hw_facts"
ORT_CPU = "onnxruntime:CPUExecutionProvider:f32"
ORT_OV = "onnxruntime:OpenVINOExecutionProvider:f32"
ORT_OV_GPU = "onnxruntime:OpenVINOExecutionProvider:GPU:f16"
OV_CPU = "openvino:CPU:f32"
OV_BF16 = "openvino:CPU:bf16"
OV_F16 = "openvino:CPU:f16"
OV_GPU = "openvino:GPU:f16"
OV_NPU = "openvino:NPU:f16"
TRT16 = "onnxruntime:TensorrtExecutionProvider:f16"
TRT32 = "onnxruntime:TensorrtExecutionProvider:f32"
CUDA = "onnxruntime:CUDAExecutionProvider:f32"

#: recorded host -> (its profile, its eligible candidates in order)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "x86-avx2-i5-8500t": ("x86-avx2", [OV_CPU, ORT_CPU, OV_GPU]),
    "x86-avx2-n100": ("x86-avx2", [OV_CPU, ORT_CPU]),  # iGPU present, OpenVINO GPU plugin not
    "x86-avx512-epyc-kvm": ("x86-avx512", [OV_BF16, OV_CPU, ORT_CPU]),  # Zen 4: AVX512_BF16
    "x86-avx512-xeon-6248": ("x86-avx512", [OV_CPU, ORT_CPU]),  # Cascade Lake: no BF16
    "xeon-amx-8480": ("xeon-amx", [OV_BF16, OV_CPU, ORT_CPU]),
    "xeon-amx-m7i-old-agent": ("xeon-amx", [OV_BF16, OV_CPU, ORT_CPU]),  # bf16 from AMX flags
    "core-ultra-155h": ("core-ultra", [OV_GPU, OV_CPU, OV_NPU, ORT_CPU]),
    "core-ultra-258v-no-npu": ("core-ultra", [OV_GPU, OV_CPU, ORT_CPU, ORT_OV_GPU]),
    "rpi4": ("rpi4", [ORT_CPU, OV_CPU]),
    "rpi5": ("rpi5", [ORT_CPU, OV_F16, OV_CPU]),
    "jetson-agx-orin": ("jetson-orin", [TRT16, TRT32, CUDA, ORT_CPU]),
    "jetson-xavier-nx": ("generic", [ORT_CPU, CUDA, TRT32]),
    "nvidia-gpu-h100-epyc": ("nvidia-gpu", [TRT16, CUDA, TRT32, OV_BF16, OV_CPU, ORT_CPU]),
    "nvidia-gpu-l4-amx-cpu-ort": ("nvidia-gpu", [OV_BF16, OV_CPU, ORT_CPU]),
    "generic-celeron-j1900": ("generic", [ORT_CPU, OV_CPU]),
    "generic-graviton3": ("generic", [ORT_CPU, OV_CPU]),
}

PACKAGED = (
    "core-ultra",
    "generic",
    "jetson-orin",
    "nvidia-gpu",
    "rpi4",
    "rpi5",
    "x86-avx2",
    "x86-avx512",
    "xeon-amx",
)


def recorded(name: str) -> HostFacts:
    """A recorded host's facts, its raw text parsed the way ``probe_host`` parses it."""
    data = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    facts = HostFacts.from_dict(data["facts"])
    cpu_model, isa_flags = parse_cpuinfo(data["cpuinfo"])
    return dataclasses.replace(
        facts,
        cpu_model=cpu_model,
        isa_flags=isa_flags,
        board_model=parse_device_tree_model(data.get("device_tree_model", "").encode()),
        jetson_release=parse_tegra_release(data.get("nv_tegra_release", "")),
        gpus=(*parse_nvidia_smi(data.get("nvidia_smi", "")), *facts.gpus),
    )


def keys(candidates: tuple[CandidateSpec, ...]) -> list[str]:
    return [c.key for c in candidates]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_host_matches_its_class(name: str) -> None:
    facts = recorded(name)
    profile_name, candidates = EXPECTED[name]
    profile = match_profile(facts)
    assert profile.name == profile_name
    assert keys(eligible_candidates(profile, facts)) == candidates
    # the same answer from the dict the agent reports (what the control plane stores)
    reported = json.loads(json.dumps(facts.to_dict()))
    assert match_profile(reported).name == profile_name
    assert keys(eligible_candidates(profile, reported)) == candidates


def test_every_recording_is_expected_and_every_class_recorded() -> None:
    assert sorted(p.stem for p in DATA.glob("*.json")) == sorted(EXPECTED)
    assert {profile for profile, _ in EXPECTED.values()} == set(PACKAGED)


def test_recorded_raw_text_is_parsed_as_expected() -> None:
    orin = recorded("jetson-agx-orin")
    assert orin.cpu_model == "ARM Cortex-A78AE"  # cpuinfo says only "ARMv8 Processor rev 1"
    assert orin.jetson_release == "R36.3.0" and orin.is_jetson
    assert orin.gpus == (GpuFacts("Orin (nvgpu)", "nvidia", 0, "540.3.0", "nvidia-smi"),)
    assert recorded("rpi5").board_model == "Raspberry Pi 5 Model B Rev 1.0"
    assert {"amx_tile", "amx_bf16", "avx512_fp16"} <= set(recorded("xeon-amx-8480").isa_flags)
    assert "avx512f" not in recorded("core-ultra-155h").isa_flags
    assert [g.memory_mb for g in recorded("nvidia-gpu-h100-epyc").gpus] == [81559, 81559]


def test_packaged_catalogue() -> None:
    catalogue = load_catalogue()
    assert tuple(p.name for p in catalogue) == PACKAGED
    assert load_catalogue() is catalogue  # read once
    for profile in catalogue:
        assert profile.description and profile.candidates
        assert profile.defaults["performance_hint"] == "LATENCY"
        for candidate in profile.candidates:
            assert candidate.precision in profile.defaults["precisions"]
            assert candidate.hint == "LATENCY"
    by_name = {p.name: p for p in catalogue}
    assert by_name["generic"].match == type(by_name["generic"].match)()  # matches anything
    assert by_name["rpi4"].candidates[0] == CandidateSpec(
        "onnxruntime", "CPUExecutionProvider", "f32", "LATENCY", 4
    )


def test_most_specific_match_wins() -> None:
    amx = [p.name for p in matching_profiles(recorded("xeon-amx-8480"))]
    assert amx == ["xeon-amx", "x86-avx512", "x86-avx2", "generic"]
    gpu_box = [p.name for p in matching_profiles(recorded("nvidia-gpu-l4-amx-cpu-ort"))]
    assert gpu_box[:2] == ["nvidia-gpu", "xeon-amx"]


def test_fallback_for_empty_or_unknown_facts() -> None:
    assert match_profile(HostFacts()).name == "generic"
    assert match_profile({}).name == "generic"
    assert eligible_candidates(match_profile({}), {}) == ()
    odd = {"arch": "riscv64", "onnxruntime_providers": ["CPUExecutionProvider"], "ram_bytes": "x"}
    profile = match_profile(odd)
    assert profile.name == "generic" and keys(eligible_candidates(profile, odd)) == [ORT_CPU]


def _profile(name: str, priority: int, match: str = "") -> Profile:
    text = (
        f'name = "{name}"\ndescription = "d"\npriority = {priority}\n[match]\n{match}\n'
        '[defaults]\nprecisions = ["f32"]\n'
        '[[candidates]]\nruntime = "onnxruntime"\ndevice = "CPUExecutionProvider"\n'
        'precision = "f32"\n'
    )
    return parse_profile(f"{name}.toml", text)


def test_matching_is_deterministic() -> None:
    facts = recorded("x86-avx512-epyc-kvm")
    catalogue = list(load_catalogue())
    first = match_profile(facts, catalogue)
    for seed in range(5):
        random.Random(seed).shuffle(catalogue)
        assert match_profile(facts, catalogue) == first
    # equal priority: the smaller name wins, whatever the order
    tied = [_profile("zeta", 5, 'arch = ["x86_64"]'), _profile("alpha", 5, 'arch = ["x86_64"]')]
    assert match_profile(facts, tied).name == "alpha"
    assert match_profile(facts, tied[::-1]).name == "alpha"


def test_no_matching_profile_is_a_profile_error() -> None:
    only_arm = [_profile("arm", 1, 'arch = ["aarch64"]')]
    with pytest.raises(ProfileError, match="no profile"):
        match_profile(recorded("x86-avx2-n100"), only_arm)


def test_match_conditions() -> None:
    facts = HostFacts(
        arch="AMD64",  # Windows spelling
        cpu_model="Intel(R) Core(TM) Ultra 7 155H",
        isa_flags=("avx2", "avx_vnni"),
        openvino_devices={"CPU": "c", "GPU.0": "a", "GPU.1": "b"},
        onnxruntime_providers=("CPUExecutionProvider",),
        gpus=(GpuFacts("NVIDIA RTX A2000", "nvidia"),),
    )
    fits = {
        'arch = ["x86_64"]': True,
        'arch = ["aarch64"]': False,
        'isa_flags = ["avx2", "avx_vnni"]': True,
        'isa_flags = ["avx2", "avx512f"]': False,
        'isa_flags_any = ["avx512f", "avx_vnni"]': True,
        'cpu_model = "core\\\\(tm\\\\) ultra"': True,
        'board_model = "Raspberry"': False,
        'gpu_name = "RTX"': True,
        'openvino_devices = ["GPU"]': True,  # GPU.0 / GPU.1
        'openvino_devices = ["NPU"]': False,
        'onnxruntime_providers = ["CUDAExecutionProvider"]': False,
        "jetson = false": True,
        "jetson = true": False,
    }
    for condition, expected in fits.items():
        profile = _profile("p", 1, condition)
        assert bool(matching_profiles(facts, [profile])) is expected, condition


def test_eligibility_rules() -> None:
    profile = parse_profile(
        "all.toml",
        'name = "all"\ndescription = "d"\npriority = 1\n'
        '[defaults]\nprecisions = ["f32", "bf16", "f16"]\n'
        + "".join(
            f'[[candidates]]\nruntime = "openvino"\ndevice = "{d}"\nprecision = "{p}"\n'
            for d, p in [("CPU", "f32"), ("CPU", "bf16"), ("CPU", "f16"), ("GPU", "f16")]
        ),
    )
    numbered_gpu = {
        "openvino_devices": {"CPU": "x", "GPU.0": "iGPU", "GPU.1": "dGPU"},
        "openvino_capabilities": {"CPU": ["FP32"], "GPU.0": ["FP32", "FP16"]},
    }
    assert keys(eligible_candidates(profile, numbered_gpu)) == [OV_CPU, OV_GPU]
    no_caps_x86 = {"openvino_devices": {"CPU": "x"}, "isa_flags": ["avx512f", "avx512_bf16"]}
    assert keys(eligible_candidates(profile, no_caps_x86)) == [OV_CPU, OV_BF16]
    no_caps_arm = {"openvino_devices": {"CPU": "x", "GPU": "y"}, "isa_flags": ["asimdhp"]}
    assert keys(eligible_candidates(profile, no_caps_arm)) == [OV_CPU, OV_F16, OV_GPU]
    caps_say_no_f16 = {"openvino_devices": {"GPU": "y"}, "openvino_capabilities": {"GPU": ["FP32"]}}
    assert eligible_candidates(profile, caps_say_no_f16) == ()


def test_qualified_devices() -> None:
    profile = parse_profile(
        "q.toml",
        'name = "q"\ndescription = "d"\npriority = 1\n[defaults]\nprecisions = ["f32", "f16"]\n'
        + "".join(
            f'[[candidates]]\nruntime = "{r}"\ndevice = "{d}"\nprecision = "{p}"\n'
            for r, d, p in [
                ("onnxruntime", "CUDAExecutionProvider:1", "f32"),
                ("onnxruntime", "OpenVINOExecutionProvider:GPU.1", "f16"),
                ("onnxruntime", "OpenVINOExecutionProvider:NPU", "f16"),
                ("openvino", "GPU.1", "f16"),
            ]
        ),
    )
    assert [c.key for c in profile.candidates][:2] == [
        "onnxruntime:CUDAExecutionProvider:1:f32",
        "onnxruntime:OpenVINOExecutionProvider:GPU.1:f16",
    ]
    ort_only = {"onnxruntime_providers": ["CUDAExecutionProvider", "OpenVINOExecutionProvider"]}
    assert len(eligible_candidates(profile, ort_only)) == 3  # OV devices unknown: trusted
    with_openvino = {**ort_only, "openvino_devices": {"CPU": "c", "GPU.0": "a", "GPU.1": "b"}}
    assert keys(eligible_candidates(profile, with_openvino)) == [
        "onnxruntime:CUDAExecutionProvider:1:f32",
        "onnxruntime:OpenVINOExecutionProvider:GPU.1:f16",
        "openvino:GPU.1:f16",
    ]


def test_candidate_key_and_defaults() -> None:
    spec = CandidateSpec("openvino", "CPU", "bf16")
    assert spec.key == "openvino:CPU:bf16" and spec.hint == "LATENCY" and spec.threads is None
    profile = parse_profile(
        "t.toml",
        'name = "t"\ndescription = "d"\npriority = 3\n'
        '[defaults]\nthreads = 2\nprecisions = ["f32"]\nperformance_hint = "THROUGHPUT"\n'
        '[[candidates]]\nruntime = "openvino"\ndevice = "CPU"\nprecision = "f32"\n'
        '[[candidates]]\nruntime = "onnxruntime"\ndevice = "CPUExecutionProvider"\n'
        'precision = "f32"\nhint = "LATENCY"\nthreads = 1\n',
    )
    assert profile.candidates == (
        CandidateSpec("openvino", "CPU", "f32", "THROUGHPUT", 2),
        CandidateSpec("onnxruntime", "CPUExecutionProvider", "f32", "LATENCY", 1),
    )


GOOD = {
    "name": '"bad"',
    "description": '"d"',
    "priority": "1",
}
CANDIDATE = 'runtime = "openvino"\ndevice = "CPU"\nprecision = "f32"\n'


def _toml(top: dict[str, str] | None = None, extra: str = "", candidate: str = CANDIDATE) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in {**GOOD, **(top or {})}.items() if v)
    return lines + extra + '[defaults]\nprecisions = ["f32"]\n' + "[[candidates]]\n" + candidate


MALFORMED: dict[str, tuple[str, str]] = {
    "syntax": ("name = \n", "invalid TOML"),
    "no name": (_toml({"name": ""}), "name: is required"),
    "name is not the file": (_toml({"name": '"other"'}), "name: 'other' must equal the file name"),
    "priority type": (_toml({"priority": '"high"'}), "priority: must be an integer >= 0"),
    "unknown top key": (_toml({"prio": "2"}), "prio: unknown key"),
    "unknown match key": (_toml(extra='[match]\nisa_flag = ["avx2"]\n'), "match.isa_flag"),
    "bad regex": (_toml(extra='[match]\ncpu_model = "(Xeon"\n'), "match.cpu_model: invalid"),
    "jetson not bool": (_toml(extra='[match]\njetson = "yes"\n'), "match.jetson: must be"),
    "bad precision": (
        _toml(candidate=CANDIDATE.replace('"f32"', '"fp16"')),
        "candidates[0].precision: 'fp16' is not one of",
    ),
    "precision not in defaults": (
        _toml(candidate=CANDIDATE.replace('"f32"', '"bf16"')),
        "candidates[0].precision: 'bf16' is not in defaults.precisions",
    ),
    "bad runtime": (
        _toml(candidate=CANDIDATE.replace('"openvino"', '"tflite"')),
        "candidates[0].runtime: 'tflite' is not one of",
    ),
    "ort device is not a provider": (
        _toml(candidate=CANDIDATE.replace('"openvino"', '"onnxruntime"')),
        "candidates[0].device: 'CPU' is not one of CPUExecutionProvider",
    ),
    "qualified cpu provider": (
        _toml(
            candidate=CANDIDATE.replace('"openvino"', '"onnxruntime"').replace(
                '"CPU"', '"CPUExecutionProvider:1"'
            )
        ),
        "candidates[0].device: 'CPUExecutionProvider:1': '1' is no device of",
    ),
    "cuda qualifier is no index": (
        _toml(
            candidate=CANDIDATE.replace('"openvino"', '"onnxruntime"').replace(
                '"CPU"', '"CUDAExecutionProvider:GPU"'
            )
        ),
        "'GPU' is no device of CUDAExecutionProvider",
    ),
    "unknown openvino device": (
        _toml(candidate=CANDIDATE.replace('"CPU"', '"VPU"')),
        "candidates[0].device: 'VPU' is not one of CPU, GPU, NPU",
    ),
    "no device": (_toml(candidate='runtime = "openvino"\nprecision = "f32"\n'), "device: is"),
    "duplicate": (
        _toml(candidate=CANDIDATE + "[[candidates]]\n" + CANDIDATE),
        "candidates: openvino:CPU:f32 is listed twice",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_profile_is_one_line_naming_file_and_field(case: str, tmp_path: Path) -> None:
    text, message = MALFORMED[case]
    (tmp_path / "ok.toml").write_text(_toml({"name": '"ok"'}), encoding="utf-8")
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_catalogue(tmp_path)
    error = str(caught.value)
    assert error.startswith(f"{tmp_path / 'bad.toml'}: ") and message in error
    assert "\n" not in error


def test_no_candidates_and_empty_directories(tmp_path: Path) -> None:
    head = 'name = "bad"\ndescription = "d"\npriority = 1\n'
    (tmp_path / "bad.toml").write_text(head)
    with pytest.raises(ProfileError, match=r"bad\.toml: defaults\.precisions: must name"):
        load_catalogue(tmp_path)
    (tmp_path / "bad.toml").write_text(head + '[defaults]\nprecisions = ["f32"]\n')
    with pytest.raises(ProfileError, match=r"bad\.toml: candidates: must be a non-empty"):
        load_catalogue(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProfileError, match="no profiles"):
        load_catalogue(empty)
    with pytest.raises(ProfileError, match="not a directory"):
        load_catalogue(tmp_path / "missing")
    (tmp_path / "bad.toml").write_text(_toml(), encoding="utf-8")
    assert [p.name for p in load_catalogue(tmp_path)] == ["bad"]


def _changed(facts: HostFacts, **changes: Any) -> HostFacts:
    return dataclasses.replace(facts, **changes)


def test_fingerprint_ignores_what_does_not_change_speed() -> None:
    facts = recorded("core-ultra-155h")
    same = [
        _changed(facts, ram_bytes=facts.ram_bytes // 2),
        _changed(facts, onnxruntime_version="1.99.0", openvino_version="2030.1"),
        _changed(facts, os_release="6.11.0-9-generic", python="3.12.1"),
        _changed(facts, probe_errors=("nvidia-smi: TimeoutExpired: timed out",)),
        _changed(facts, openvino_capabilities={}),
        _changed(facts, isa_flags=tuple(reversed(facts.isa_flags))),
        _changed(facts, onnxruntime_providers=tuple(reversed(facts.onnxruntime_providers))),
        _changed(facts, gpus=tuple(dataclasses.replace(g, driver="xe") for g in facts.gpus)),
    ]
    assert {f.fingerprint() for f in same} == {facts.fingerprint()}
    assert len(facts.fingerprint()) == 64 and int(facts.fingerprint(), 16) >= 0
    reported = facts.to_dict()
    assert reported["fingerprint"] == facts.fingerprint() == fingerprint(reported)
    assert fingerprint({**reported, "fingerprint": "stale"}) == facts.fingerprint()
    assert HostFacts.from_dict(reported) == facts
    assert facts.runtime_versions() == {
        "onnxruntime": facts.onnxruntime_version,
        "openvino": facts.openvino_version,
    }


def test_fingerprint_changes_with_what_changes_speed() -> None:
    facts = recorded("core-ultra-155h")
    different = [
        _changed(facts, cpu_model="Intel(R) Core(TM) Ultra 5 125H"),
        _changed(facts, isa_flags=(*facts.isa_flags, "avx512f")),
        _changed(facts, logical_cores=18),
        _changed(facts, physical_cores=14),
        _changed(facts, openvino_devices={"CPU": facts.openvino_devices["CPU"]}),  # NPU gone
        _changed(
            facts, onnxruntime_providers=(*facts.onnxruntime_providers, "OpenVINOExecutionProvider")
        ),
        _changed(facts, gpus=(*facts.gpus, GpuFacts("NVIDIA GeForce RTX 4060", "nvidia"))),
    ]
    prints = [f.fingerprint() for f in different]
    assert facts.fingerprint() not in prints and len(set(prints)) == len(prints)


def test_simulated_hosts_are_boxes_of_real_classes() -> None:
    from agent.simulator import fake_facts

    assert [match_profile(fake_facts(i)).name for i in range(3)] == ["x86-avx2", "xeon-amx", "rpi5"]
