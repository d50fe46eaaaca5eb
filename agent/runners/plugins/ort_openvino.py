"""ONNX Runtime on the OpenVINO execution provider (the ``onnxruntime-openvino`` build).

Present only where ``onnxruntime`` lists ``OpenVINOExecutionProvider``: otherwise this
module raises ImportError at import and the registry skips it. The device
``OpenVINOExecutionProvider:<OpenVINO device>`` (CPU, GPU, GPU.1, NPU; default CPU)
becomes ``device_type``; precision f32 / f16 becomes ``precision`` FP32 / FP16 (what the
EP allows per device: ``ort_providers.OPENVINO_EP_PRECISIONS``); ``spec.threads``
becomes ``num_of_threads`` on CPU. bf16 is the native ``openvino`` runner's.
"""

from __future__ import annotations

from typing import ClassVar

import onnxruntime as ort  # guarded by the registry: ImportError skips this plugin

from agent.runners.ort_providers import (
    OPENVINO_EP,
    RUNTIME,
    Providers,
    openvino_ep_providers,
    openvino_ep_reason,
)
from agent.runners.ort_session import OrtRunner
from agent.runners.spec import CandidateSpec

if OPENVINO_EP not in ort.get_available_providers():
    raise ImportError(f"onnxruntime {ort.__version__} has no {OPENVINO_EP}")


def _openvino_devices() -> list[str] | None:
    """The devices the EP sees (a private ORT helper; None when this build lacks it)."""
    try:
        from onnxruntime.capi import _pybind_state

        return list(_pybind_state.get_available_openvino_device_ids())
    except Exception:  # pragma: no cover - depends on the ORT build
        return None


class OrtOpenVinoRunner(OrtRunner):
    key: ClassVar[str] = "ort_openvino"
    provider: ClassVar[str] = OPENVINO_EP
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(
        RUNTIME, f"{OPENVINO_EP}:CPU", "f32"
    )

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return openvino_ep_reason(spec, ort.get_available_providers(), _openvino_devices())

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        return openvino_ep_providers(spec)
