"""ONNX Runtime on the CUDA execution provider (NVIDIA GPUs, f32).

Present only where ``onnxruntime`` (the GPU build) lists ``CUDAExecutionProvider``:
otherwise this module raises ImportError at import and the registry skips it. The
device ``CUDAExecutionProvider:<n>`` selects GPU ``n`` (``device_id``; default 0).
"""

from __future__ import annotations

from typing import ClassVar

import onnxruntime as ort  # guarded by the registry: ImportError skips this plugin

from agent.runners.ort_providers import CUDA_EP, RUNTIME, Providers, cuda_providers, cuda_reason
from agent.runners.ort_session import OrtRunner
from agent.runners.spec import CandidateSpec

if CUDA_EP not in ort.get_available_providers():
    raise ImportError(f"onnxruntime {ort.__version__} has no {CUDA_EP}")


class OrtCudaRunner(OrtRunner):
    key: ClassVar[str] = "ort_cuda"
    provider: ClassVar[str] = CUDA_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(RUNTIME, CUDA_EP, "f32")

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return cuda_reason(spec, ort.get_available_providers())

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return cuda_providers(spec)
