"""The plain-default configurations a user would write, measured beside a profile's own.

A profile lists tuned candidates; a user who never read it writes
``onnxruntime.InferenceSession(path)`` or ``core.compile_model(model, "CPU")``. The
selection must hold those too, or it may pick something slower than the obvious choice.
``plain_defaults`` adds, for the CPU candidates a host can run (pure, from its facts):

    onnxruntime CPU f32  ``+t1``       one intra-op thread: on a tiny model the thread
                                       pool's hand-offs cost more than the extra cores
                                       give (only where the host has more than one core)
    openvino CPU f32     ``+default``  no PERFORMANCE_HINT: OpenVINO's own default

The profile's ``onnxruntime:CPUExecutionProvider:f32`` already is ONNX Runtime's default
configuration (graph optimizations ALL, one thread per physical core). A variant's key is
its candidate's with ``+variant`` (``onnxruntime:CPUExecutionProvider:f32+t1``), so it
can be reported and pinned like any other. A variant the profile already lists (same
runtime, device, precision, hint and threads) is not added twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from hw_profiles.catalogue import CandidateSpec

ORT_CPU = ("onnxruntime", "CPUExecutionProvider", "f32")
OPENVINO_CPU = ("openvino", "CPU", "f32")


def _cores(facts: Mapping[str, Any] | Any) -> int:
    get = facts.get if isinstance(facts, Mapping) else lambda k, d=0: getattr(facts, k, d)
    return int(get("physical_cores", 0) or get("logical_cores", 0) or 0)


def plain_defaults(
    candidates: Sequence[CandidateSpec], facts: Mapping[str, Any] | Any
) -> list[CandidateSpec]:
    """``candidates`` followed by the plain-default variants of those it holds."""
    out = list(candidates)

    def add(spec: CandidateSpec) -> None:
        same = dataclasses.replace(spec, variant="")
        if not any(dataclasses.replace(c, variant="") == same for c in out):
            out.append(spec)

    for spec in candidates:
        if spec.variant:
            continue
        triple = (spec.runtime, spec.device, spec.precision)
        if triple == ORT_CPU and _cores(facts) > 1:
            add(dataclasses.replace(spec, threads=1, variant="t1"))
        elif triple == OPENVINO_CPU:
            add(dataclasses.replace(spec, hint="", threads=None, variant="default"))
    return out


__all__ = ["plain_defaults"]
