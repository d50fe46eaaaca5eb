"""What this host's runtimes offer, known without loading them in this process.

A runner plugin imports its SDK (onnxruntime, openvino) only when one of its candidates
is loaded (measured or served): an idle agent, or one serving on ONNX Runtime, never
carries OpenVINO. Which plugins are usable, which ORT execution providers and which
OpenVINO devices (with their OPTIMIZATION_CAPABILITIES) there are, comes from
``hw_profiles.probe_runtimes``: asked once per process, in a child process.

    sdk_problem(module)      why a plugin's SDK cannot be used here (None: it can)
    ort_providers()          ONNX Runtime's available execution providers
    ort_version()            its version ("" when not installed)
    openvino_devices()       OpenVINO's available devices
    openvino_capabilities(d) a device's OPTIMIZATION_CAPABILITIES
"""

from __future__ import annotations

from importlib.util import find_spec

from hw_profiles.runtimes import RuntimeFacts, probe_runtimes


def facts() -> RuntimeFacts:
    """The runtimes' facts (probed once per process, in a child)."""
    return probe_runtimes()


def sdk_problem(module: str) -> str | None:
    """Why ``module`` (onnxruntime, openvino) cannot serve here: not installed, or its
    import / first query failed in the probe. None when it is usable."""
    try:
        spec = find_spec(module)
    except (ImportError, ValueError) as exc:
        return f"{module} cannot be found: {exc}"
    if spec is None:
        return f"No module named '{module}'"
    problem = facts().problem(module)
    return None if problem is None else f"{module} is not usable: {problem}"


def ort_providers() -> tuple[str, ...]:
    return facts().onnxruntime_providers


def ort_version() -> str:
    return facts().onnxruntime_version


def openvino_devices() -> tuple[str, ...]:
    return tuple(facts().openvino_devices)


def openvino_capabilities(device: str) -> frozenset[str]:
    """``GPU`` reads the first GPU's (OpenVINO's alias for ``GPU.0``)."""
    known = facts().openvino_capabilities
    if device not in known:
        device = next((d for d in known if d.split(".", 1)[0] == device), device)
    return frozenset(known.get(device, ()))


__all__ = [
    "facts",
    "openvino_capabilities",
    "openvino_devices",
    "ort_providers",
    "ort_version",
    "sdk_problem",
]
