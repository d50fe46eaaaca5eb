"""ONNX Runtime on the OpenVINO execution provider (the ``onnxruntime-openvino`` build).

Present only where ``onnxruntime`` lists ``OpenVINOExecutionProvider`` (``unavailable``
says why not, and the registry skips the plugin). The device
``OpenVINOExecutionProvider:<OpenVINO device>`` (CPU, GPU, GPU.1, NPU; default CPU)
becomes ``device_type``; precision f32 / f16 becomes ``precision`` FP32 / FP16 (what the
EP allows per device: ``ort_providers.OPENVINO_EP_PRECISIONS``); ``spec.threads``
becomes ``num_of_threads`` on CPU. bf16 is the native ``openvino`` runner's.
"""

from __future__ import annotations

from typing import ClassVar

from agent.runners import installed
from agent.runners.ort_providers import (
    OPENVINO_EP,
    RUNTIME,
    Providers,
    openvino_ep_providers,
    openvino_ep_reason,
)
from agent.runners.ort_session import OrtRunner, ort_unavailable
from agent.runners.spec import CandidateSpec


def unavailable() -> str | None:
    """Why this plugin cannot load here (the registry skips it then), or None."""
    return ort_unavailable(OPENVINO_EP)


class OrtOpenVinoRunner(OrtRunner):
    key: ClassVar[str] = "ort_openvino"
    provider: ClassVar[str] = OPENVINO_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(
        RUNTIME, f"{OPENVINO_EP}:CPU", "f32"
    )

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        devices = installed.facts().ort_openvino_devices
        return openvino_ep_reason(spec, installed.ort_providers(), devices)

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return openvino_ep_providers(spec)
