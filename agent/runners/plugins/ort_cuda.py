"""ONNX Runtime on the CUDA execution provider (NVIDIA GPUs, f32).

Present only where ``onnxruntime`` (the GPU build) lists ``CUDAExecutionProvider``
(``unavailable`` says why not, and the registry skips the plugin). The device
``CUDAExecutionProvider:<n>`` selects GPU ``n`` (``device_id``; default 0).
"""

from __future__ import annotations

from typing import ClassVar

from agent.runners import installed
from agent.runners.ort_providers import CUDA_EP, RUNTIME, Providers, cuda_providers, cuda_reason
from agent.runners.ort_session import OrtRunner, ort_unavailable
from agent.runners.spec import CandidateSpec


def unavailable() -> str | None:
    """Why this plugin cannot load here (the registry skips it then), or None."""
    return ort_unavailable(CUDA_EP)


class OrtCudaRunner(OrtRunner):
    key: ClassVar[str] = "ort_cuda"
    provider: ClassVar[str] = CUDA_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(RUNTIME, CUDA_EP, "f32")

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return cuda_reason(spec, installed.ort_providers())

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return cuda_providers(spec)
