"""Probe the host softly: every probe is guarded, so ``probe_host`` never raises.

A probe that fails leaves its field at a neutral value (empty string, 0, empty tuple)
and records a one-line note in ``HostFacts.probe_errors`` so that an operator can see
why a field is missing.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

#: CPU feature flags that matter for backend / precision selection.
ISA_FLAGS_OF_INTEREST: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
)

CPUINFO = Path("/proc/cpuinfo")
T = TypeVar("T")


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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """CPU model name and the flags of interest from the text of /proc/cpuinfo.

    x86 lists ``flags``, ARM lists ``Features`` (``asimd`` is ARMv8 NEON; ``neon`` is
    added whenever ``asimd`` is present so callers can ask one question).
    """
    names: dict[str, str] = {}
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            continue
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif not value.isdigit():  # x86 "model" is a number; ARM boards name themselves
            names.setdefault(key, value)
    model = next(
        (names[k] for k in ("model name", "cpu model", "model", "hardware") if k in names), ""
    )
    if "asimd" in flags:
        flags.add("neon")
    return model, tuple(f for f in ISA_FLAGS_OF_INTEREST if f in flags)


def _guard(errors: list[str], what: str, probe: Callable[[], T], default: T) -> T:
    try:
        return probe()
    except Exception as exc:  # a probe must never break the agent
        errors.append(f"{what}: {type(exc).__name__}: {exc}".splitlines()[0])
        logger.debug("probe %s failed: %s", what, exc)
        return default


def _cpu() -> tuple[str, tuple[str, ...]]:
    model, flags = parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    return model or platform.processor(), flags


def _ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _onnxruntime() -> tuple[str, tuple[str, ...]]:
    import onnxruntime

    return str(onnxruntime.__version__), tuple(onnxruntime.get_available_providers())


def _openvino() -> tuple[str, dict[str, str]]:
    import openvino

    core = openvino.Core()
    devices: dict[str, str] = {}
    for device in core.available_devices:
        try:
            devices[device] = str(core.get_property(device, "FULL_DEVICE_NAME"))
        except Exception:  # some plugins lack the property; keep the device anyway
            devices[device] = ""
    return str(openvino.__version__), devices


def probe_host() -> HostFacts:
    """Collect HostFacts. Never raises: a failed probe leaves its field empty."""
    errors: list[str] = []
    no_names: tuple[str, tuple[str, ...]] = ("", ())
    no_devices: tuple[str, dict[str, str]] = ("", {})
    cpu_model, isa = _guard(errors, "cpuinfo", _cpu, no_names)
    ort_version, providers = _guard(errors, "onnxruntime", _onnxruntime, no_names)
    ov_version, ov_devices = _guard(errors, "openvino", _openvino, no_devices)
    return HostFacts(
        cpu_model=cpu_model,
        logical_cores=_guard(errors, "cores", lambda: os.cpu_count() or 0, 0),
        isa_flags=isa,
        ram_bytes=_guard(errors, "ram", _ram_bytes, 0),
        os=_guard(errors, "os", platform.system, ""),
        os_release=_guard(errors, "os_release", platform.release, ""),
        arch=_guard(errors, "arch", platform.machine, ""),
        python=_guard(errors, "python", platform.python_version, ""),
        onnxruntime_version=ort_version,
        onnxruntime_providers=providers,
        openvino_version=ov_version,
        openvino_devices=ov_devices,
        probe_errors=tuple(errors),
    )
