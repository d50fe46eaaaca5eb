"""ONNX Runtime on the CPU execution provider (f32): the runner every host has.

``spec.threads`` sets ``intra_op_num_threads``; graph optimizations are ALL. The session
logic is ``ort_session.OrtRunner``; which specs this plugin takes is ``ort_providers``.
onnxruntime is imported when a session is first created, not with this module.
"""

from __future__ import annotations

from typing import ClassVar

from agent.runners import installed
from agent.runners.ort_providers import CPU_EP, RUNTIME, Providers, cpu_providers, cpu_reason
from agent.runners.ort_session import OrtRunner, ort_unavailable
from agent.runners.spec import CandidateSpec


def unavailable() -> str | None:
    """Why this plugin cannot load here (the registry skips it then), or None."""
    return ort_unavailable(CPU_EP)


class OnnxRuntimeRunner(OrtRunner):
    key: ClassVar[str] = "onnxruntime"
    provider: ClassVar[str] = CPU_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(RUNTIME, CPU_EP, "f32")

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return cpu_reason(spec, installed.ort_providers())

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return cpu_providers(spec)
