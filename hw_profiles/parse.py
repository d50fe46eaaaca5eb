"""Pure parsers for the text the probe reads: /proc/cpuinfo, nvidia-smi, Jetson files, DRM.

Kept apart from ``hw_profiles.probe`` (which does the guarded I/O) so that recorded
output of real hosts can be parsed in tests exactly as a live probe parses it. A parser
raises ``ValueError`` on text it cannot make sense of; the probe turns that into a note.
"""

from __future__ import annotations

import re

from hw_profiles.facts import ISA_FLAGS_OF_INTEREST, GpuFacts

#: (implementer, part) of /proc/cpuinfo on arm64 -> core name, for CPUs whose cpuinfo
#: carries no model name (or only "ARMv8 Processor rev 1 (v8l)", as on Jetson).
ARM_PARTS: dict[tuple[int, int], str] = {
    (0x41, 0xD03): "ARM Cortex-A53",
    (0x41, 0xD04): "ARM Cortex-A35",
    (0x41, 0xD05): "ARM Cortex-A55",
    (0x41, 0xD07): "ARM Cortex-A57",
    (0x41, 0xD08): "ARM Cortex-A72",
    (0x41, 0xD09): "ARM Cortex-A73",
    (0x41, 0xD0A): "ARM Cortex-A75",
    (0x41, 0xD0B): "ARM Cortex-A76",
    (0x41, 0xD0C): "ARM Neoverse-N1",
    (0x41, 0xD0D): "ARM Cortex-A77",
    (0x41, 0xD40): "ARM Neoverse-V1",
    (0x41, 0xD41): "ARM Cortex-A78",
    (0x41, 0xD42): "ARM Cortex-A78AE",
    (0x41, 0xD44): "ARM Cortex-X1",
    (0x41, 0xD46): "ARM Cortex-A510",
    (0x41, 0xD47): "ARM Cortex-A710",
    (0x41, 0xD48): "ARM Cortex-X2",
    (0x41, 0xD49): "ARM Neoverse-N2",
    (0x41, 0xD4B): "ARM Cortex-A78C",
    (0x41, 0xD4F): "ARM Neoverse-V2",
    (0x41, 0xD80): "ARM Cortex-A520",
    (0x41, 0xD81): "ARM Cortex-A720",
    (0x41, 0xD84): "ARM Neoverse-V3",
    (0x4E, 0x004): "NVIDIA Carmel",
    (0xC0, 0xAC3): "Ampere-1",
}

_GENERIC_ARM_NAME = re.compile(r"^ARMv\d+ Processor", re.IGNORECASE)
_PCI_VENDORS = {"0x10de": "nvidia", "0x8086": "intel", "0x1002": "amd"}
_VENDOR_LABELS = {"nvidia": "NVIDIA", "intel": "Intel", "amd": "AMD"}


def _first_block(text: str) -> tuple[dict[str, str], set[str]]:
    """Named fields (first occurrence) and the flags of the first processor seen."""
    names: dict[str, str] = {}
    flags: set[str] | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            continue
        if key in ("flags", "features"):
            if flags is None:
                flags = set(value.split())
        else:
            names.setdefault(key, value)
    return names, flags or set()


def _arm_core(names: dict[str, str]) -> str:
    try:
        key = (int(names["cpu implementer"], 16), int(names["cpu part"], 16))
    except (KeyError, ValueError):
        return ""
    return ARM_PARTS.get(key, "")


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """CPU model name and the flags of interest from the text of /proc/cpuinfo.

    x86 lists ``flags``, arm64 lists ``Features`` (``asimd`` is ARMv8 NEON; ``neon`` is
    added whenever ``asimd`` is present so callers can ask one question). The model is
    ``model name`` (x86), else a board's ``Model`` line (Raspberry Pi), else ``Hardware``;
    a missing or generic arm64 name ("ARMv8 Processor rev 1") becomes the core's name from
    ``CPU implementer`` / ``CPU part`` (``ARM_PARTS``).
    """
    names, flags = _first_block(text)
    numeric = {k for k, v in names.items() if v.isdigit()}  # x86 "model" is a number
    model = next(
        (
            names[k]
            for k in ("model name", "cpu model", "model", "hardware")
            if k in names and k not in numeric
        ),
        "",
    )
    if not model or _GENERIC_ARM_NAME.match(model):
        model = _arm_core(names) or model
    if "asimd" in flags:
        flags.add("neon")
    return model, tuple(f for f in ISA_FLAGS_OF_INTEREST if f in flags)


def parse_physical_cores(text: str) -> int:
    """Distinct (``physical id``, ``core id``) pairs of /proc/cpuinfo; 0 if it has none."""
    cores: set[tuple[str, str]] = set()
    package = core = None
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():  # end of one processor's block
            if core is not None:
                cores.add((package or "0", core))
            package = core = None
    return len(cores)


def _memory_mb(text: str) -> int:
    number = text.strip().removesuffix("MiB").strip()
    return int(number) if number.isdigit() else 0  # "[N/A]" on Jetson


def parse_nvidia_smi(text: str) -> tuple[GpuFacts, ...]:
    """GPUs from ``nvidia-smi --query-gpu=name,memory.total,driver_version
    --format=csv,noheader`` (one line per GPU: ``NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15``).
    """
    gpus: list[GpuFacts] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"unexpected nvidia-smi line {line.strip()[:80]!r}")
        name, memory, driver = parts
        gpus.append(
            GpuFacts(
                name=name,
                vendor="nvidia",
                memory_mb=_memory_mb(memory),
                driver=driver,
                source="nvidia-smi",
            )
        )
    return tuple(gpus)


_TEGRA = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", re.IGNORECASE)


def parse_tegra_release(text: str) -> str:
    """``R36.3.0`` from /etc/nv_tegra_release (``# R36 (release), REVISION: 3.0, ...``).

    An unfamiliar but non-empty file still marks a Jetson: its first line is returned.
    """
    found = _TEGRA.search(text)
    if found:
        return f"R{found.group(1)}.{found.group(2)}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first.lstrip("# ")[:80]


def parse_device_tree_model(raw: bytes) -> str:
    """/proc/device-tree/model is NUL-terminated: ``Raspberry Pi 5 Model B Rev 1.0``."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "").strip()


def drm_gpu(vendor_id: str, device_id: str, driver: str) -> GpuFacts:
    """A GPU seen as a /dev/dri render node (PCI ids from sysfs, e.g. ``0x8086``)."""
    vendor_id, device_id = vendor_id.strip().lower(), device_id.strip().lower()
    vendor = _PCI_VENDORS.get(vendor_id, vendor_id)
    label = _VENDOR_LABELS.get(vendor, vendor or "unknown")
    name = f"{label} GPU {device_id}" if device_id else f"{label} GPU"
    if driver:
        name += f" ({driver})"
    return GpuFacts(name=name, vendor=vendor, driver=driver, source="drm")
