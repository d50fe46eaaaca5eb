"""Probe the host softly: every probe is guarded, so ``probe_host`` never raises.

Each probe reads one source (/proc/cpuinfo, psutil, nvidia-smi, /dev/dri + sysfs, the
device tree, /etc/nv_tegra_release) and hands the text to a pure parser in
``hw_profiles.parse``. ONNX Runtime and OpenVINO are asked in a child process, once per
process (``hw_profiles.runtimes``), so that probing never loads them here. A probe that
fails leaves its field at a neutral value (empty string, 0, empty tuple) and records a
one-line note in ``HostFacts.probe_errors`` (``"<probe>: <Error>: <message>"``) so that
an operator can see why a field is missing.
A source that simply does not exist on this kind of host (no nvidia-smi on PATH, no
device tree on a PC, no Jetson release file) is not an error: the field stays empty.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hw_profiles.facts import ISA_FLAGS_OF_INTEREST, GpuFacts, HostFacts
from hw_profiles.parse import (
    drm_gpu,
    parse_cpuinfo,
    parse_device_tree_model,
    parse_nvidia_smi,
    parse_physical_cores,
    parse_tegra_release,
)
from hw_profiles.runtimes import probe_runtimes

__all__ = ["ISA_FLAGS_OF_INTEREST", "HostFacts", "parse_cpuinfo", "probe_host"]

logger = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
DEVICE_TREE_MODELS = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DRI = Path("/dev/dri")
SYS_DRM = Path("/sys/class/drm")
NVIDIA_SMI = "nvidia-smi"
NVIDIA_SMI_TIMEOUT_S = 5.0
T = TypeVar("T")


def _guard(errors: list[str], what: str, probe: Callable[[], T], default: T) -> T:
    try:
        return probe()
    except Exception as exc:  # a probe must never break the agent
        text = f"{what}: {type(exc).__name__}: {exc}".strip()
        errors.append(text.splitlines()[0] if text else what)
        logger.debug("probe %s failed: %s", what, exc)
        return default


def _physical_cores(cpuinfo: str) -> int:
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:
        count = None
    count = count or parse_physical_cores(cpuinfo)
    if not count:
        raise LookupError("neither psutil nor /proc/cpuinfo reports physical cores")
    return int(count)


def _ram_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _nvidia_gpus() -> tuple[GpuFacts, ...]:
    exe = shutil.which(NVIDIA_SMI)
    if exe is None:
        return ()
    query = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    done = subprocess.run(
        [exe, *query], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"exit status {done.returncode}" + (f": {why[0]}" if why else ""))
    return parse_nvidia_smi(done.stdout)


def _read_sysfs(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace").strip() if path.is_file() else ""


def _drm_gpus() -> tuple[GpuFacts, ...]:
    if not DRI.is_dir():
        return ()
    gpus: list[GpuFacts] = []
    for node in sorted(DRI.glob("renderD*")):
        device = SYS_DRM / node.name / "device"
        driver = device / "driver"
        gpus.append(
            drm_gpu(
                _read_sysfs(device / "vendor"),
                _read_sysfs(device / "device"),
                driver.resolve().name if driver.exists() else "",
            )
        )
    return tuple(gpus)


def _board_model() -> str:
    for path in DEVICE_TREE_MODELS:
        if path.is_file():
            return parse_device_tree_model(path.read_bytes())
    return ""


def _jetson_release() -> str:
    if not NV_TEGRA_RELEASE.is_file():
        return ""
    return parse_tegra_release(NV_TEGRA_RELEASE.read_text(encoding="utf-8", errors="replace"))


def probe_host() -> HostFacts:
    """Collect HostFacts. Never raises: a failed probe leaves its field empty."""
    errors: list[str] = []
    cpuinfo = _guard(
        errors, "cpuinfo", lambda: CPUINFO.read_text(encoding="utf-8", errors="replace"), ""
    )
    cpu_model, isa = parse_cpuinfo(cpuinfo)
    if not cpu_model:
        cpu_model = _guard(errors, "cpu_model", platform.processor, "")
    runtimes = probe_runtimes()  # in a child process: this one never loads them
    errors.extend(runtimes.errors)
    no_gpus: tuple[GpuFacts, ...] = ()
    nvidia = _guard(errors, "nvidia-smi", _nvidia_gpus, no_gpus)
    drm = _guard(errors, "drm", _drm_gpus, no_gpus)
    if nvidia:  # nvidia-smi names NVIDIA GPUs better than their render nodes
        drm = tuple(gpu for gpu in drm if gpu.vendor != "nvidia")
    return HostFacts(
        cpu_model=cpu_model,
        logical_cores=_guard(errors, "cores", lambda: os.cpu_count() or 0, 0),
        physical_cores=_guard(errors, "physical_cores", lambda: _physical_cores(cpuinfo), 0),
        isa_flags=isa,
        ram_bytes=_guard(errors, "ram", _ram_bytes, 0),
        os=_guard(errors, "os", platform.system, ""),
        os_release=_guard(errors, "os_release", platform.release, ""),
        arch=_guard(errors, "arch", platform.machine, ""),
        python=_guard(errors, "python", platform.python_version, ""),
        board_model=_guard(errors, "device-tree", _board_model, ""),
        jetson_release=_guard(errors, "nv_tegra_release", _jetson_release, ""),
        onnxruntime_version=runtimes.onnxruntime_version,
        onnxruntime_providers=runtimes.onnxruntime_providers,
        openvino_version=runtimes.openvino_version,
        openvino_devices=dict(runtimes.openvino_devices),
        openvino_capabilities=dict(runtimes.openvino_capabilities),
        gpus=(*nvidia, *drm),
        probe_errors=tuple(errors),
    )
