"""Pure choice: host facts -> the profile of their device class -> candidates it can run.

``match_profile`` takes facts (a live ``HostFacts`` or a reported / recorded dict) and a
catalogue, keeps the profiles whose every ``[match]`` condition holds, and returns the
one with the highest ``priority`` (ties: the smaller name), so the answer depends on the
facts and the catalogue only. The packaged catalogue ends in ``generic``, which matches
anything.

``eligible_candidates`` keeps the profile's candidates this host can actually run, in the
profile's order. An ONNX Runtime candidate needs its execution provider in
``onnxruntime_providers`` (``OpenVINOExecutionProvider:GPU`` also needs a GPU among
``openvino_devices`` when those are known; a GPU index is not checked). An OpenVINO one
needs its device in ``openvino_devices`` (``GPU`` is also ``GPU.0``...) and, where the
probe read the device's OPTIMIZATION_CAPABILITIES, the precision among them (FP32, BF16,
FP16, INT8). Where it could not, a CPU needs the ISA for the precision (bf16: AVX512_BF16
or AMX-BF16; f16: AVX512_FP16, AMX-FP16 or arm64 fp16 arithmetic) and a GPU / NPU is
trusted to run what its profile lists. Which of the eligible candidates is fastest for a
model is for measurement to say, not for this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hw_profiles.catalogue import CandidateSpec, Match, Profile, load_catalogue
from hw_profiles.errors import ProfileError
from hw_profiles.facts import HostFacts, as_host_facts, normalize_arch

#: precision of a candidate -> the OpenVINO OPTIMIZATION_CAPABILITIES entry it needs
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16", "int8": "INT8"}
#: ISA flags that let OpenVINO's CPU plugin compute in a precision (when caps are unknown)
_CPU_PRECISION_FLAGS = {
    "bf16": frozenset({"avx512_bf16", "amx_bf16"}),
    "f16": frozenset({"avx512_fp16", "amx_fp16", "asimdhp"}),
}


def _openvino_device(device: str, devices: Mapping[str, str]) -> str | None:
    """The probed device name ``device`` refers to (``GPU`` -> ``GPU`` or ``GPU.0``)."""
    if device in devices:
        return device
    numbered = sorted(name for name in devices if name.startswith(f"{device}."))
    return numbered[0] if numbered else None


def _matches(match: Match, facts: HostFacts) -> bool:
    flags = set(facts.isa_flags)
    if match.arch and normalize_arch(facts.arch) not in {normalize_arch(a) for a in match.arch}:
        return False
    if not set(match.isa_flags) <= flags:
        return False
    if match.isa_flags_any and not flags & set(match.isa_flags_any):
        return False
    if match.cpu_model and not match.cpu_model.search(facts.cpu_model):
        return False
    if match.board_model and not match.board_model.search(facts.board_model):
        return False
    if match.gpu_name and not any(match.gpu_name.search(gpu.name) for gpu in facts.gpus):
        return False
    if any(_openvino_device(d, facts.openvino_devices) is None for d in match.openvino_devices):
        return False
    if not set(match.onnxruntime_providers) <= set(facts.onnxruntime_providers):
        return False
    return match.jetson is None or match.jetson == facts.is_jetson


def matching_profiles(
    facts: HostFacts | Mapping[str, Any], catalogue: Sequence[Profile] | None = None
) -> tuple[Profile, ...]:
    """Every profile of ``catalogue`` that fits ``facts``, the winner first."""
    host = as_host_facts(facts)
    profiles = load_catalogue() if catalogue is None else catalogue
    fitting = [p for p in profiles if _matches(p.match, host)]
    return tuple(sorted(fitting, key=lambda p: (-p.priority, p.name)))


def match_profile(
    facts: HostFacts | Mapping[str, Any], catalogue: Sequence[Profile] | None = None
) -> Profile:
    """The most specific profile for ``facts``: highest priority, then name. Pure.

    ``catalogue``: default the packaged one (whose ``generic`` matches anything). Raises
    ``ProfileError`` only for a catalogue in which no profile matches.
    """
    fitting = matching_profiles(facts, catalogue)
    if not fitting:
        raise ProfileError("no profile of the catalogue matches this host")
    return fitting[0]


def can_run(candidate: CandidateSpec, facts: HostFacts | Mapping[str, Any]) -> bool:
    """Whether this host has what ``candidate`` needs (see the module docstring)."""
    host = as_host_facts(facts)
    if candidate.runtime == "onnxruntime":
        provider, _, qualifier = candidate.device.partition(":")
        if provider not in host.onnxruntime_providers:
            return False
        if provider == "OpenVINOExecutionProvider" and qualifier and host.openvino_devices:
            return _openvino_device(qualifier, host.openvino_devices) is not None
        return True
    if candidate.runtime != "openvino":
        return False
    device = _openvino_device(candidate.device, host.openvino_devices)
    if device is None:
        return False
    capabilities = host.openvino_capabilities.get(device, ())
    if capabilities:
        return CAPABILITY.get(candidate.precision, "") in capabilities
    needs = _CPU_PRECISION_FLAGS.get(candidate.precision)
    if candidate.device == "CPU" and needs is not None:
        return bool(needs & set(host.isa_flags))
    return True


def eligible_candidates(
    profile: Profile, facts: HostFacts | Mapping[str, Any]
) -> tuple[CandidateSpec, ...]:
    """The candidates of ``profile`` this host can run, in the profile's order. Pure."""
    host = as_host_facts(facts)
    return tuple(c for c in profile.candidates if can_run(c, host))
