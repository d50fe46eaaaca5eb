"""OpenVINO runner (CPU device): serves OpenVINO IR bundles, and ONNX bundles when chosen.

The model is read with ``Core.read_model`` (an IR ``.xml`` with its ``.bin``, or an
``.onnx`` with its external data) and compiled for "CPU" with a latency hint and an
explicit f32 inference precision: without it OpenVINO silently runs bf16 on CPUs with
AMX / AVX512-BF16 and the outputs drift from the model's. Nothing is reshaped: the CPU
plugin runs dynamic shapes as they are. Each call takes an idle InferRequest from a small
pool (or creates one), so ``infer`` is safe from many threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

try:  # a missing or broken SDK skips this plugin only (the registry logs the ImportError)
    import openvino as ov
except Exception as exc:  # pragma: no cover - depends on the host
    raise ImportError(f"openvino is not usable: {exc}") from exc

from agent.errors import InferenceError, ModelLoadError
from agent.runners.base import Runner, check_inputs

logger = logging.getLogger(__name__)

DEVICE = "CPU"
#: Compile configuration; INFERENCE_PRECISION_HINT f32 keeps outputs equal to the model's.
COMPILE_CONFIG: dict[str, str] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
#: Idle infer requests kept for reuse (more may run at once; extra ones are dropped after).
MAX_IDLE_REQUESTS = 8


class OpenVinoRunner(Runner):
    key: ClassVar[str] = "openvino"
    platform: ClassVar[str] = "openvino"

    def __init__(self) -> None:
        super().__init__()
        self._compiled: Any = None
        self._output_names: tuple[str, ...] = ()
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        return "openvino-cpu"

    @property
    def inference_precision(self) -> str:
        """The precision the compiled model runs at (``f32``); empty when not loaded."""
        compiled = self._compiled
        if compiled is None:
            return ""
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        self.set_signature(metadata)
        model_path = Path(bundle_dir) / str(metadata.model_file)
        try:
            core = ov.Core()
            if model_path.suffix.lower() == ".xml":
                model = core.read_model(str(model_path), str(model_path.with_suffix(".bin")))
            else:
                model = core.read_model(str(model_path))
            inputs = [set(port.get_names()) for port in model.inputs]
            outputs = [set(port.get_names()) for port in model.outputs]
            self._check_declared(inputs, outputs)
            compiled = core.compile_model(model, DEVICE, COMPILE_CONFIG)
        except ModelLoadError:
            raise
        except Exception as exc:  # RuntimeError and OpenVINO's own error types
            raise ModelLoadError(f"openvino cannot load {model_path.name}: {_line(exc)}") from exc
        self._output_names = tuple(self._output_name(names, i) for i, names in enumerate(outputs))
        with self._lock:
            self._compiled, self._idle = compiled, []
        logger.debug("loaded %s on %s at %s", model_path, DEVICE, self.inference_precision)

    def _check_declared(self, inputs: list[set[str]], outputs: list[set[str]]) -> None:
        """ModelLoadError unless the metadata's inputs are the model's and its outputs exist.

        A port may carry several tensor names; the declared one must be one of them.
        """
        declared_in = [s.name for s in self.inputs]
        matched = [next((n for n in declared_in if n in names), None) for names in inputs]
        if len(declared_in) != len(inputs) or sorted(filter(None, matched)) != sorted(declared_in):
            actual = sorted(min(names) if names else "?" for names in inputs)
            raise ModelLoadError(
                f"declared inputs {sorted(declared_in)} differ from the model's {actual}"
            )
        produced = set().union(*outputs) if outputs else set()
        missing = sorted({s.name for s in self.outputs} - produced)
        if missing:
            raise ModelLoadError(f"declared output {missing[0]!r} is not produced by the model")

    def _output_name(self, names: set[str], index: int) -> str:
        declared = [s.name for s in self.outputs if s.name in names]
        if declared:
            return declared[0]
        return min(names) if names else f"output_{index}"

    def _take_request(self, compiled: Any) -> Any:
        with self._lock:
            if self._idle and compiled is self._compiled:
                return self._idle.pop()
        return compiled.create_infer_request()

    def _give_back(self, compiled: Any, request: Any) -> None:
        with self._lock:
            if compiled is self._compiled and len(self._idle) < MAX_IDLE_REQUESTS:
                self._idle.append(request)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        compiled = self._compiled
        if compiled is None:
            raise InferenceError("model is not loaded")
        check_inputs(self.inputs, inputs)
        try:
            request = self._take_request(compiled)
            # share_outputs=False (the default) copies the results out of the request
            results = request.infer(dict(inputs)).to_tuple()
        except Exception as exc:  # RuntimeError and OpenVINO's own error types
            raise InferenceError(f"openvino: {_line(exc)}") from exc
        self._give_back(compiled, request)
        return {
            name: np.asarray(value) for name, value in zip(self._output_names, results, strict=True)
        }

    def close(self) -> None:
        with self._lock:
            self._compiled, self._idle = None, []


def _line(exc: BaseException) -> str:
    """OpenVINO's multi-line ``Exception from src/...`` text as one line: its last message."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception from ")]
    line = lines[-1] if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
