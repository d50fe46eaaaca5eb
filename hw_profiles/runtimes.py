"""Probe the installed inference runtimes (ONNX Runtime, OpenVINO) in a child process.

Importing ONNX Runtime costs about 45 MB of resident memory and OpenVINO as much again
(plus each device plugin ``Core`` loads), and Python cannot unload an extension module:
a process that only asked which providers / devices there are would keep both for good.
So ``probe_runtimes()`` runs ``python -m hw_profiles.runtime_child`` once per process,
which imports each runtime, asks it, and prints the answers as one JSON line; the calling
process never imports either. The answer is cached for the process
(``probe_runtimes.cache_clear()`` to ask again).

Soft like every probe: a runtime that is not installed is no error (its fields stay
empty); one that fails to import or to answer, and a child that crashes, hangs past
``TIMEOUT_S`` or prints no answer, leave the fields empty with a one-line note in
``errors`` (``"<probe>: <Error>: <message>"``). A crashing driver thus costs the child,
never the agent.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeVar

from hw_profiles import runtime_cache

logger = logging.getLogger(__name__)

#: seconds the child may take (an OpenVINO GPU / NPU plugin may be slow to start)
TIMEOUT_S = 60.0
CHILD_MODULE = "hw_profiles.runtime_child"
T = TypeVar("T")


@dataclass(frozen=True)
class RuntimeFacts:
    """What the installed runtimes offer (empty fields: not installed or not usable)."""

    onnxruntime_version: str = ""
    onnxruntime_providers: tuple[str, ...] = ()
    openvino_version: str = ""
    openvino_devices: dict[str, str] = field(default_factory=dict)
    openvino_capabilities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    #: the devices ONNX Runtime's OpenVINO EP sees (None: no such EP, or not told)
    ort_openvino_devices: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeFacts:
        """From ``to_dict()``'s JSON form (lists back to tuples); ValueError if malformed."""
        try:
            return cls(
                onnxruntime_version=str(data["onnxruntime_version"]),
                onnxruntime_providers=tuple(str(p) for p in data["onnxruntime_providers"]),
                openvino_version=str(data["openvino_version"]),
                openvino_devices={str(k): str(v) for k, v in data["openvino_devices"].items()},
                openvino_capabilities={
                    str(k): tuple(str(c) for c in v)
                    for k, v in data["openvino_capabilities"].items()
                },
                errors=tuple(str(e) for e in data["errors"]),
                ort_openvino_devices=None
                if data.get("ort_openvino_devices") is None
                else tuple(str(d) for d in data["ort_openvino_devices"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed runtime facts: {exc}") from exc

    def problem(self, runtime: str) -> str | None:
        """The note of a runtime that is installed but not usable (None if usable)."""
        return next((e for e in self.errors if e.startswith(f"{runtime}:")), None)


def _guard(errors: list[str], what: str, probe: Callable[[], T], default: T) -> T:
    try:
        return probe()
    except Exception as exc:  # a probe must never fail the whole answer
        text = f"{what}: {type(exc).__name__}: {exc}".strip()
        errors.append(text.splitlines()[0] if text else what)
        return default


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _onnxruntime() -> tuple[str, tuple[str, ...]]:
    import onnxruntime

    return str(onnxruntime.__version__), tuple(onnxruntime.get_available_providers())


def _ort_openvino_devices() -> tuple[str, ...] | None:
    """The devices the ORT OpenVINO EP sees (a private ORT helper; None when this build
    lacks it)."""
    try:
        from onnxruntime.capi import _pybind_state

        return tuple(str(d) for d in _pybind_state.get_available_openvino_device_ids())
    except Exception:  # depends on the ORT build
        return None


def _property_text(core: Any, device: str) -> str:
    return str(core.get_property(device, "FULL_DEVICE_NAME"))


def _capabilities(core: Any, device: str) -> tuple[str, ...]:
    return tuple(str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES"))


def _openvino(errors: list[str]) -> tuple[str, dict[str, str], dict[str, tuple[str, ...]]]:
    """Version, devices with FULL_DEVICE_NAME, and OPTIMIZATION_CAPABILITIES per device."""
    import openvino

    core = openvino.Core()
    names: dict[str, str] = {}
    capabilities: dict[str, tuple[str, ...]] = {}
    no_capabilities: tuple[str, ...] = ()
    for device in core.available_devices:
        # a plugin may lack a property: keep the device, note the property
        names[device] = _guard(
            errors,
            f"openvino {device} FULL_DEVICE_NAME",
            functools.partial(_property_text, core, device),
            "",
        )
        capabilities[device] = _guard(
            errors,
            f"openvino {device} OPTIMIZATION_CAPABILITIES",
            functools.partial(_capabilities, core, device),
            no_capabilities,
        )
    return str(openvino.__version__), names, capabilities


def probe_runtimes_here() -> RuntimeFacts:
    """Import each installed runtime in *this* process and ask it (what the child runs)."""
    errors: list[str] = []
    no_onnxruntime: tuple[str, tuple[str, ...]] = ("", ())
    ort_version, providers = no_onnxruntime
    if _installed("onnxruntime"):
        ort_version, providers = _guard(errors, "onnxruntime", _onnxruntime, no_onnxruntime)
    no_openvino: tuple[str, dict[str, str], dict[str, tuple[str, ...]]] = ("", {}, {})
    ov_version, devices, capabilities = no_openvino
    if _installed("openvino"):
        ov_version, devices, capabilities = _guard(
            errors, "openvino", lambda: _openvino(errors), no_openvino
        )
    ep_devices = None
    if "OpenVINOExecutionProvider" in providers:
        ep_devices = _ort_openvino_devices()
    return RuntimeFacts(
        ort_version, providers, ov_version, devices, capabilities, tuple(errors), ep_devices
    )


def child_env() -> dict[str, str]:
    """This environment, with the directory holding our packages first on PYTHONPATH (a
    source checkout runs the child as it runs this process)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return env


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The JSON object on the last non-empty line of a child's output, else None (a
    runtime may print to stdout on import)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _child_failure(done: subprocess.CompletedProcess[str]) -> str:
    why = [line for line in done.stderr.splitlines() if line.strip()]
    return f"exit status {done.returncode}" + (f": {why[-1].strip()[:200]}" if why else "")


#: what each runtime's native library is called in a process's memory map
LIBRARIES = {"onnxruntime": "onnxruntime_pybind11_state", "openvino": "libopenvino.so"}


def mapped_runtimes(pid: int) -> tuple[str, ...]:
    """The runtimes whose native library process ``pid`` has loaded (``/proc/PID/maps``,
    Linux): what it holds, whatever Python imported or forgot."""
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    return tuple(runtime for runtime, library in LIBRARIES.items() if library in maps)


_started: list[subprocess.Popen[str]] = []
#: where the answer is kept between runs (``start_probe(cache=...)``), and its key
_kept: list[tuple[Path, str]] = []


def start_probe(cache: Path | None = None) -> None:
    """Start the probe child now, so that it runs while this process imports the rest
    (``edge-agent run`` calls it first); ``probe_runtimes`` collects its answer. With
    ``cache`` (a file: ``runtime_cache``), an answer kept there for this interpreter,
    these runtime installs and this boot is used instead, and a new one is kept there."""
    if _started or probe_runtimes.cache_info().currsize:
        return
    if cache is not None:
        key = runtime_cache.cache_key()
        _kept[:] = [(cache, key)]
        if runtime_cache.read(cache, key) is not None:
            return  # probe_runtimes reads it: no child at all
    try:
        _started.append(_spawn())
    except OSError as exc:  # probe_runtimes tries again, and notes the failure
        logger.debug("cannot start the runtime probe early: %s", exc)


def _from_cache() -> RuntimeFacts | None:
    if not _kept:
        return None
    path, key = _kept[0]
    data = runtime_cache.read(path, key)
    try:
        return RuntimeFacts.from_dict(data) if data is not None else None
    except ValueError:
        return None


def _spawn() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", CHILD_MODULE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )


@functools.cache
def probe_runtimes() -> RuntimeFacts:
    """The runtimes' facts, probed in a child process once per process (never raises)."""
    kept = _from_cache()
    if kept is not None:
        return kept
    try:
        child = _started.pop() if _started else _spawn()
        try:
            stdout, stderr = child.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("runtime probe failed: %s", exc)
        return RuntimeFacts(errors=(f"runtimes: {type(exc).__name__}: {exc}".splitlines()[0],))
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    answer = last_json_line(done.stdout)
    if done.returncode != 0 or answer is None:
        note = f"runtimes: the probe process failed: {_child_failure(done)}"
        logger.warning("%s", note)
        return RuntimeFacts(errors=(note,))
    try:
        facts = RuntimeFacts.from_dict(answer)
    except ValueError as exc:
        return RuntimeFacts(errors=(f"runtimes: {exc}",))
    if _kept:
        runtime_cache.write(_kept[0][0], _kept[0][1], facts.to_dict())
    return facts


__all__ = [
    "RuntimeFacts",
    "child_env",
    "last_json_line",
    "mapped_runtimes",
    "probe_runtimes",
    "probe_runtimes_here",
    "start_probe",
]
