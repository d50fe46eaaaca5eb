"""``HostFacts``: what the agent knows about its host, and the fingerprint of its speed.

``HostFacts`` is a frozen dataclass; ``to_dict()`` is its JSON form (the ``hardware`` field
of the agent's state report, stored per device by the control plane) and ``from_dict()``
reads that form back tolerantly (unknown keys are ignored, missing or mistyped ones take
the neutral value), so the pure matching in ``hw_profiles.matching`` works on a live probe
and on a recorded or reported dict alike. New fields are only ever added, never renamed.

``fingerprint()`` is a sha256 over the facts that decide how fast a model runs here: CPU
model, ISA flags, core counts, arch, board, OpenVINO devices (with their full names), ONNX
Runtime providers and GPU names. RAM, OS release, Python and runtime versions, OpenVINO
capabilities (they follow the OpenVINO version) and probe notes are left out: two boxes of
one kind share a fingerprint, and a runtime upgrade is keyed by ``runtime_versions()``
instead (the measured-selection cache uses both).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: CPU feature flags that matter for backend / precision selection, as Linux names them
#: (x86 ``flags``, arm64 ``Features`` of /proc/cpuinfo). ``neon`` is added whenever
#: ``asimd`` is present; ``asimddp`` is the arm64 dot product, ``asimdhp`` fp16 arithmetic.
ISA_FLAGS_OF_INTEREST: tuple[str, ...] = (
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "neon",
    "asimd",
    "asimddp",
    "asimdhp",
    "bf16",
    "i8mm",
    "sve",
)

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def normalize_arch(arch: str) -> str:
    """``x86_64`` / ``aarch64`` for the names other OSes use (AMD64, arm64)."""
    lowered = arch.strip().lower()
    return _ARCH_ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class GpuFacts:
    """One GPU. ``source``: ``nvidia-smi`` or ``drm`` (a /dev/dri render node)."""

    name: str
    vendor: str = ""  # nvidia, intel, amd, or the PCI vendor id
    memory_mb: int = 0  # 0: unknown (integrated GPUs share RAM)
    driver: str = ""  # driver version (nvidia-smi) or kernel driver (drm)
    source: str = ""


@dataclass(frozen=True)
class HostFacts:
    """What the agent knows about its host. ``to_dict()`` is JSON-ready."""

    cpu_model: str = ""
    logical_cores: int = 0
    isa_flags: tuple[str, ...] = ()
    ram_bytes: int = 0
    os: str = ""
    os_release: str = ""
    arch: str = ""
    python: str = ""
    onnxruntime_version: str = ""
    onnxruntime_providers: tuple[str, ...] = ()
    openvino_version: str = ""
    openvino_devices: dict[str, str] = field(default_factory=dict)
    probe_errors: tuple[str, ...] = ()
    physical_cores: int = 0
    board_model: str = ""  # device tree model: "Raspberry Pi 5 Model B Rev 1.0"
    jetson_release: str = ""  # L4T release from /etc/nv_tegra_release: "R36.3.0"
    openvino_capabilities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    gpus: tuple[GpuFacts, ...] = ()

    @property
    def is_jetson(self) -> bool:
        return bool(self.jetson_release) or "jetson" in self.board_model.lower()

    def fingerprint(self) -> str:
        """sha256 (hex) of the facts that affect speed; see the module docstring."""
        speed = {
            "arch": normalize_arch(self.arch),
            "cpu_model": self.cpu_model,
            "isa_flags": sorted(set(self.isa_flags)),
            "logical_cores": self.logical_cores,
            "physical_cores": self.physical_cores,
            "board_model": self.board_model,
            "openvino_devices": sorted(self.openvino_devices.items()),
            "onnxruntime_providers": sorted(set(self.onnxruntime_providers)),
            "gpus": sorted(gpu.name for gpu in self.gpus),
        }
        canonical = json.dumps(speed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def runtime_versions(self) -> dict[str, str]:
        """The runtime versions part of a selection cache key (empty: not installed)."""
        return {"onnxruntime": self.onnxruntime_version, "openvino": self.openvino_version}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts plus ``fingerprint``; tuples become lists."""
        data: dict[str, Any] = _jsonable(asdict(self))
        data["fingerprint"] = self.fingerprint()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostFacts:
        """Facts from ``to_dict()`` output (or an older agent's); never raises on odd input."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in known & set(data):
            raw = data[name]
            if name in _INT_FIELDS:
                values[name] = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
            elif name in _STR_TUPLE_FIELDS:
                values[name] = _strings(raw)
            elif name == "openvino_devices":
                values[name] = (
                    {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
                )
            elif name == "openvino_capabilities":
                values[name] = (
                    {str(k): _strings(v) for k, v in raw.items()}
                    if isinstance(raw, Mapping)
                    else {}
                )
            elif name == "gpus":
                values[name] = _gpus(raw)
            else:
                values[name] = raw if isinstance(raw, str) else ""
        return cls(**values)


_INT_FIELDS = frozenset({"logical_cores", "physical_cores", "ram_bytes"})
_STR_TUPLE_FIELDS = frozenset({"isa_flags", "onnxruntime_providers", "probe_errors"})


def _strings(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list | tuple):
        return tuple(str(item) for item in raw)
    return ()


def _gpus(raw: Any) -> tuple[GpuFacts, ...]:
    if not isinstance(raw, list | tuple):
        return ()
    gpus: list[GpuFacts] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        memory = item.get("memory_mb", 0)
        gpus.append(
            GpuFacts(
                name=item["name"],
                vendor=str(item.get("vendor", "")),
                memory_mb=memory if isinstance(memory, int) and not isinstance(memory, bool) else 0,
                driver=str(item.get("driver", "")),
                source=str(item.get("source", "")),
            )
        )
    return tuple(gpus)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def as_host_facts(facts: HostFacts | Mapping[str, Any]) -> HostFacts:
    """``facts`` itself, or ``HostFacts.from_dict(facts)`` for a reported / recorded dict."""
    return facts if isinstance(facts, HostFacts) else HostFacts.from_dict(facts)


def fingerprint(facts: HostFacts | Mapping[str, Any]) -> str:
    """The hardware fingerprint of live or reported facts (a stale key in a dict is ignored)."""
    return as_host_facts(facts).fingerprint()
