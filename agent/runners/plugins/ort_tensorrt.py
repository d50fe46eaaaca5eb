"""ONNX Runtime on the TensorRT execution provider (NVIDIA GPUs, Jetson; f32 or f16).

Present only where ``onnxruntime`` lists ``TensorrtExecutionProvider`` (``unavailable``
says why not, and the registry skips the plugin). Precision f16 sets
``trt_fp16_enable``; ``TensorrtExecutionProvider:<n>`` selects GPU ``n``. The CUDA EP
follows TensorRT in the provider list for the nodes TensorRT cannot take. Engines are
built when the session is created (slow the first time; not cached on disk here).
"""

from __future__ import annotations

from typing import ClassVar

from agent.runners import installed
from agent.runners.ort_providers import (
    RUNTIME,
    TENSORRT_EP,
    Providers,
    tensorrt_providers,
    tensorrt_reason,
)
from agent.runners.ort_session import OrtRunner, ort_unavailable
from agent.runners.spec import CandidateSpec


def unavailable() -> str | None:
    """Why this plugin cannot load here (the registry skips it then), or None."""
    return ort_unavailable(TENSORRT_EP)


class OrtTensorrtRunner(OrtRunner):
    key: ClassVar[str] = "ort_tensorrt"
    provider: ClassVar[str] = TENSORRT_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(RUNTIME, TENSORRT_EP, "f16")

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return tensorrt_reason(spec, installed.ort_providers())

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return tensorrt_providers(spec, installed.ort_providers())
