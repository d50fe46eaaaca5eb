"""Which runner serves a bundle: a pure function of its metadata and the available runners.

An ONNX bundle runs on ONNX Runtime, or on OpenVINO when ONNX Runtime is missing; an
OpenVINO IR bundle runs on OpenVINO only. A bundle's ``constraints.runtimes`` narrows
this to the runtimes it names. ``check_spec_allowed`` applies the same rule to one
candidate (``CandidateSpec.runtime`` is a runner key of this table). (Measured selection
among the candidates is built on top of this.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.errors import RunnerUnavailable

#: Runner keys able to serve each framework, in order of preference.
FRAMEWORK_RUNNERS: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "openvino"),
    "openvino": ("openvino",),
}


def candidate_runners(metadata: Any) -> tuple[str, ...]:
    """Runner keys allowed to serve the bundle (framework and constraints), preferred first;
    empty for a framework this agent does not know."""
    candidates = FRAMEWORK_RUNNERS.get(str(metadata.framework), ())
    constraints = getattr(metadata, "constraints", None)
    allowed = getattr(constraints, "runtimes", None)
    if allowed:
        candidates = tuple(key for key in candidates if key in allowed)
    return candidates


def unservable(metadata: Any) -> str:
    """Why no runner can ever serve this bundle (for an empty ``candidate_runners``)."""
    framework = str(metadata.framework)
    if framework not in FRAMEWORK_RUNNERS:
        known = ", ".join(sorted(FRAMEWORK_RUNNERS))
        return f"framework {framework!r} is not supported by this agent (it serves {known})"
    runtimes = list(getattr(getattr(metadata, "constraints", None), "runtimes", None) or [])
    return f"requires runtimes {runtimes}, none of which can serve framework {framework!r}"


def runner_for(metadata: Any, available: Iterable[str] | None = None) -> str:
    """The key of the runner that serves this bundle, among ``available`` runner keys
    (default: the plugins that loaded). ``RunnerUnavailable`` (one line) if none can."""
    if available is None:
        from agent.runners import available_runners

        available = available_runners()
    have = set(available)
    candidates = candidate_runners(metadata)
    for key in candidates:
        if key in have:
            return key
    if not candidates:
        raise RunnerUnavailable(unservable(metadata))
    wanted = " or ".join(repr(key) for key in candidates)
    raise RunnerUnavailable(
        f"bundle needs runtime {wanted}, which this agent does not have (have {sorted(have)})"
    )


def spec_allowed(metadata: Any, spec: Any) -> bool:
    """Whether the bundle's framework and constraints allow candidate ``spec``'s runtime."""
    return str(spec.runtime) in candidate_runners(metadata)


def check_spec_allowed(metadata: Any, spec: Any) -> None:
    """``RunnerUnavailable`` (one line) unless ``spec_allowed(metadata, spec)``."""
    if spec_allowed(metadata, spec):
        return
    candidates = candidate_runners(metadata)
    if not candidates:
        raise RunnerUnavailable(unservable(metadata))
    raise RunnerUnavailable(
        f"candidate {spec.key} cannot serve this bundle (it runs on {' or '.join(candidates)})"
    )
