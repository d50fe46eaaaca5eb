"""Can this agent run a bundle? Checked from ``edgefleet.json`` alone, before downloading.

``unmet_constraints`` is pure: it looks at the bundle metadata, the host facts
(``hw_profiles.HostFacts.to_dict()``: ``ram_bytes``, ``isa_flags``, ``probe_errors``) and
the keys of the runner plugins that loaded, and says in one line per problem why the
bundle cannot run here. An empty list means it can. Unknown facts never pass a
constraint: a host whose RAM could not be measured does not meet ``min_ram_bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.runners.choice import candidate_runners, unservable
from hw_profiles.probe import ISA_FLAGS_OF_INTEREST
from model_store.metadata import FRAMEWORK_OPENVINO, FRAMEWORK_PIPELINE, BundleMetadata

_GIB = 1024**3


def _size(n: int) -> str:
    return f"{n / _GIB:.1f} GiB ({n} bytes)"


def _flags(names: list[str]) -> str:
    return ("CPU flag " if len(names) == 1 else "CPU flags ") + ", ".join(names)


def _probe_failed(facts: Mapping[str, Any], probe: str) -> bool:
    errors = facts.get("probe_errors") or ()
    return any(str(line).startswith(f"{probe}:") for line in errors)


def _runtime_problem(metadata: BundleMetadata, runners: set[str]) -> str | None:
    if metadata.framework == FRAMEWORK_PIPELINE:  # runs served models, no runtime of its own
        return None
    candidates = candidate_runners(metadata)
    if not candidates:
        return unservable(metadata)
    if any(key in runners for key in candidates):
        return None
    if metadata.framework == FRAMEWORK_OPENVINO:
        return "an OpenVINO IR model requires runtime 'openvino', which this agent does not have"
    if len(candidates) == 1:
        return f"requires runtime {candidates[0]!r}, which this agent does not have"
    named = " or ".join(repr(key) for key in candidates)
    return f"requires runtime {named}, which this agent does not have"


def _ram_problem(minimum: int, facts: Mapping[str, Any]) -> str | None:
    ram = facts.get("ram_bytes")
    if not isinstance(ram, int) or isinstance(ram, bool) or ram <= 0:
        return f"requires {_size(minimum)} of RAM, but this agent could not measure its RAM"
    if ram < minimum:
        return f"requires {_size(minimum)} of RAM, but this host has {_size(ram)}"
    return None


def _flag_problems(required: list[str], facts: Mapping[str, Any]) -> list[str]:
    raw = facts.get("isa_flags") or ()
    present = {raw} if isinstance(raw, str) else {str(flag) for flag in raw}
    missing = [flag for flag in required if flag not in present]
    unprobed = [flag for flag in missing if flag not in ISA_FLAGS_OF_INTEREST]
    lacking = [flag for flag in missing if flag in ISA_FLAGS_OF_INTEREST]
    problems: list[str] = []
    if unprobed:
        problems.append(f"requires {_flags(unprobed)}, which this agent does not probe for")
    if lacking and _probe_failed(facts, "cpuinfo"):
        problems.append(f"requires {_flags(lacking)}, but this agent could not read its CPU flags")
    elif lacking:
        problems.append(f"requires {_flags(lacking)}, which this CPU lacks")
    return problems


def unmet_constraints(
    metadata: BundleMetadata, *, facts: Mapping[str, Any], runners: Iterable[str]
) -> list[str]:
    """One line per constraint of ``metadata`` this host does not meet; empty if it can run.

    ``runners`` are the keys of the available runner plugins (``available_runners()``).
    Checks: a runner able to serve the framework and allowed by ``constraints.runtimes``
    (an IR needs 'openvino'); ``min_ram_bytes`` against ``facts["ram_bytes"]``;
    ``cpu_flags`` against ``facts["isa_flags"]`` (flags the agent does not probe for
    cannot be confirmed, so they are unmet).
    """
    problems: list[str] = []
    runtime = _runtime_problem(metadata, set(runners))
    if runtime is not None:
        problems.append(runtime)
    constraints = metadata.constraints
    if constraints is None:
        return problems
    if constraints.min_ram_bytes is not None:
        ram = _ram_problem(constraints.min_ram_bytes, facts)
        if ram is not None:
            problems.append(ram)
    if constraints.cpu_flags:
        problems.extend(_flag_problems(constraints.cpu_flags, facts))
    return problems
