"""Pure ONNX Runtime execution-provider logic: which specs each EP takes, and its options.

No onnxruntime import: the ORT plugins (``onnxruntime``, ``ort_cuda``, ``ort_tensorrt``,
``ort_openvino``) call these with ``onnxruntime.get_available_providers()``, and the unit
tests call them on hosts without the hardware. Option names are ONNX Runtime's:

    CUDA EP       ``device_id``
    TensorRT EP   ``device_id``, ``trt_fp16_enable`` (precision f16); the CUDA EP follows
                  it in the provider list (when present) for nodes TensorRT cannot take
    OpenVINO EP   ``device_type`` (CPU, GPU, GPU.1, NPU), ``precision`` (FP32 / FP16),
                  ``num_of_threads`` (CPU only)

Precisions: the CPU and CUDA EPs run the model as it is (f32 only); TensorRT f32 or f16;
the OpenVINO EP f32 on CPU, f32 or f16 on GPU, f16 on NPU (what that EP documents). bf16
is OpenVINO's own runner's (``openvino.py``); int8 needs a quantized model and calibration
this agent does not do, so no ORT EP accepts it.
"""

from __future__ import annotations

from collections.abc import Collection

from agent.runners.spec import CandidateSpec, device_present, split_device

RUNTIME = "onnxruntime"
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"

#: A provider list as ``InferenceSession(providers=...)`` takes it.
Providers = list[tuple[str, dict[str, str]]]

#: OpenVINO EP precisions per device family, as that EP documents them.
OPENVINO_EP_PRECISIONS: dict[str, tuple[str, ...]] = {
    "CPU": ("f32",),
    "GPU": ("f32", "f16"),
    "NPU": ("f16",),
}
_OPENVINO_EP_PRECISION_NAMES = {"f32": "FP32", "f16": "FP16"}


def base_reason(
    spec: CandidateSpec, provider: str, available: Collection[str], precisions: Collection[str]
) -> str | None:
    """The checks every ORT plugin makes: runtime, provider present, precision, threads."""
    if spec.runtime != RUNTIME:
        return f"runtime {spec.runtime!r} is not {RUNTIME!r}"
    name, _ = split_device(spec.device)
    if name != provider:
        return f"device {spec.device!r} is not the {provider}"
    if provider not in available:
        return f"{provider} is not available (onnxruntime has {sorted(available)})"
    if spec.precision not in precisions:
        return f"precision {spec.precision!r} is not one of {sorted(precisions)} on {provider}"
    if spec.threads is not None and spec.threads < 0:
        return f"threads must not be negative, not {spec.threads}"
    return None


def gpu_id(spec: CandidateSpec) -> int:
    """The GPU of ``CUDAExecutionProvider:1`` (default 0); ValueError if not a number."""
    _, qualifier = split_device(spec.device)
    if not qualifier:
        return 0
    if not qualifier.isdigit():
        raise ValueError(f"device {spec.device!r}: GPU id {qualifier!r} is not a number")
    return int(qualifier)


def _gpu_reason(spec: CandidateSpec) -> str | None:
    try:
        gpu_id(spec)
    except ValueError as exc:
        return str(exc)
    return None


def cpu_reason(spec: CandidateSpec, available: Collection[str]) -> str | None:
    reason = base_reason(spec, CPU_EP, available, ("f32",))
    if reason is None and split_device(spec.device)[1]:
        return f"device {spec.device!r}: the CPU EP takes no qualifier"
    return reason


def cpu_providers(spec: CandidateSpec) -> Providers:
    return [(CPU_EP, {})]


def cuda_reason(spec: CandidateSpec, available: Collection[str]) -> str | None:
    return base_reason(spec, CUDA_EP, available, ("f32",)) or _gpu_reason(spec)


def cuda_providers(spec: CandidateSpec) -> Providers:
    return [(CUDA_EP, {"device_id": str(gpu_id(spec))})]


def tensorrt_reason(spec: CandidateSpec, available: Collection[str]) -> str | None:
    return base_reason(spec, TENSORRT_EP, available, ("f32", "f16")) or _gpu_reason(spec)


def tensorrt_providers(spec: CandidateSpec, available: Collection[str]) -> Providers:
    device_id = str(gpu_id(spec))
    options = {"device_id": device_id, "trt_fp16_enable": str(spec.precision == "f16")}
    providers: Providers = [(TENSORRT_EP, options)]
    if CUDA_EP in available:
        providers.append((CUDA_EP, {"device_id": device_id}))
    return providers


def openvino_device(spec: CandidateSpec) -> str:
    """The OpenVINO device of ``OpenVINOExecutionProvider:GPU.1`` (default CPU)."""
    return split_device(spec.device)[1] or "CPU"


def openvino_ep_reason(
    spec: CandidateSpec, available: Collection[str], devices: Collection[str] | None = None
) -> str | None:
    """``devices``: the OpenVINO devices the EP sees, when known (None: not checked)."""
    precisions = ("f32", "f16")
    reason = base_reason(spec, OPENVINO_EP, available, precisions)
    if reason is not None:
        return reason
    device = openvino_device(spec)
    family = device.split(".", 1)[0]
    allowed = OPENVINO_EP_PRECISIONS.get(family)
    if allowed is None:
        return f"OpenVINO device {device!r} is not one of {sorted(OPENVINO_EP_PRECISIONS)}"
    if spec.precision not in allowed:
        return f"the OpenVINO EP runs {device} at {', '.join(allowed)} only"
    if devices is not None and not device_present(device, devices):
        return f"OpenVINO device {device!r} is not present (have {sorted(devices)})"
    return None


def openvino_ep_providers(spec: CandidateSpec) -> Providers:
    device = openvino_device(spec)
    options = {"device_type": device, "precision": _OPENVINO_EP_PRECISION_NAMES[spec.precision]}
    if spec.threads and device == "CPU":
        options["num_of_threads"] = str(spec.threads)
    return [(OPENVINO_EP, options)]
