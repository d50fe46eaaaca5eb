"""The candidate a runner is configured for: ``hw_profiles.CandidateSpec``, re-exported.

A candidate is one (runtime, device, precision[, hint, threads]) the selection may measure;
its ``key`` (``"openvino:CPU:bf16"``, ``"onnxruntime:CPUExecutionProvider:f32"``) is what
the device reports as its backend. The class lives in ``hw_profiles`` (the profile
catalogue names candidates); this module re-exports it with the runners' device rules.
``threads`` None or 0 leaves the thread count to the runtime (one per physical core).

Device strings, by runtime:
    onnxruntime   an execution provider name, optionally ``:<qualifier>``:
                  ``CPUExecutionProvider``; ``CUDAExecutionProvider[:<gpu id>]``;
                  ``TensorrtExecutionProvider[:<gpu id>]``;
                  ``OpenVINOExecutionProvider[:<OpenVINO device>]`` (CPU, GPU, GPU.1, NPU)
    openvino      an OpenVINO device name: ``CPU``, ``GPU``, ``GPU.1``, ``NPU``...
"""

from __future__ import annotations

from collections.abc import Collection

from hw_profiles import CandidateSpec


def split_device(device: str) -> tuple[str, str]:
    """``"CUDAExecutionProvider:1"`` -> ``("CUDAExecutionProvider", "1")``; no qualifier: ``""``."""
    name, _, qualifier = device.partition(":")
    return name, qualifier


def device_present(device: str, devices: Collection[str]) -> bool:
    """Whether an OpenVINO device name is among ``devices``: ``GPU`` matches ``GPU.0``
    (OpenVINO's alias for the first GPU); ``GPU.1`` must be listed as such."""
    return device in devices or any(d.split(".", 1)[0] == device for d in devices)


__all__ = ["CandidateSpec", "device_present", "split_device"]
