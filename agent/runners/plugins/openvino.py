"""OpenVINO runner: any OpenVINO device (CPU, GPU, GPU.N, NPU) at an explicit precision.

Serves OpenVINO IR bundles, and ONNX bundles when chosen. The model is read with
``Core.read_model`` (an IR ``.xml`` with its ``.bin``, or an ``.onnx`` with its external
data) and compiled for ``spec.device`` with ``compile_config(spec)``:

    PERFORMANCE_HINT          spec.hint (LATENCY by default; "" leaves it unset: OpenVINO's
                              own default, the ``+default`` variant)
    INFERENCE_PRECISION_HINT  f32 / bf16 / f16 from spec.precision. Always explicit: left
                              alone OpenVINO silently runs bf16 on CPUs with AMX /
                              AVX512-BF16 and the outputs drift from the model's.
    INFERENCE_NUM_THREADS     spec.threads, on CPU only (ignored for other devices; None
                              or 0: OpenVINO's own choice)
    ENABLE_CPU_PINNING        NO, on CPU. Left alone OpenVINO pins its stream threads
                              *and the thread that calls infer* to cores of its own
                              choosing, so a local API connection thread stayed pinned
                              after its request, and a model confined to its fair share's
                              cores (``agent.serving.placement``) ran elsewhere. Unpinned,
                              its threads take the cores of the thread that loads it.

int8 means "run this already-quantized model's int8 kernels": it is accepted only for a
model that holds quantization (FakeQuantize, or int8/uint8 weights), with the rest kept
at f32; a float model is refused (ModelLoadError), since quantizing needs calibration
data the agent does not have. After compiling, the precision the compiled model reports
must be the one asked for, or the load is refused.

``supports(spec)`` checks that the device is in ``Core().available_devices`` and the
precision in its OPTIMIZATION_CAPABILITIES (bf16 needs BF16, f16 FP16, int8 INT8; CPU f32
always); both come from the runtime probe (``agent.runners.installed``: once per process,
in a child), and openvino itself is imported on the first load, not with this module: an
agent that serves with ONNX Runtime never loads it. Nothing is reshaped: dynamic shapes run as
they are. Each call takes an idle InferRequest from a small pool (or creates one), so
``infer`` is safe from many threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.errors import InferenceError, ModelLoadError
from agent.runners import installed
from agent.runners.altstack import drop_alt_stack
from agent.runners.base import Runner, check_inputs
from agent.runners.spec import CandidateSpec, device_present

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

RUNTIME = "openvino"
#: INFERENCE_PRECISION_HINT per spec precision (int8: the quantized model's own kernels,
#: everything else f32).
PRECISION_HINTS: dict[str, str] = {"f32": "f32", "bf16": "bf16", "f16": "f16", "int8": "f32"}
#: The OPTIMIZATION_CAPABILITIES entry each precision needs.
CAPABILITIES: dict[str, str] = {"f32": "FP32", "bf16": "BF16", "f16": "FP16", "int8": "INT8"}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
#: Idle infer requests kept for reuse (more may run at once; extra ones are dropped after).
MAX_IDLE_REQUESTS = 8

# pyopenvino builds a function-local static (its element-type -> numpy dtype table) the
# first time a request's tensors are converted, and that initialisation gives up the GIL
# half-way: two threads making their first inference together deadlock (one holds the
# static's guard and waits for the GIL, the other holds the GIL and waits for the guard;
# seen with 20 simulated agents measuring OpenVINO at once). Until one inference has
# completed in this process, inferences take this lock, which waits without the GIL.
_FIRST_INFER_LOCK = threading.Lock()
_first_infer_done = False
_QUANTIZED_TYPES = frozenset({"i8", "u8", "i4", "u4"})


def compile_config(spec: CandidateSpec) -> dict[str, str]:
    """The ``compile_model`` configuration of a candidate (pure)."""
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[spec.precision]}
    if spec.hint:  # "": OpenVINO's own default hint (the ``+default`` variant)
        config["PERFORMANCE_HINT"] = spec.hint
    if _family(spec.device) == "CPU":
        config["ENABLE_CPU_PINNING"] = "NO"
        if spec.threads:
            config["INFERENCE_NUM_THREADS"] = str(spec.threads)
    return config


def unsupported_reason_for(
    spec: CandidateSpec,
    devices: Collection[str],
    capabilities: Callable[[str], Collection[str]],
) -> str | None:
    """Why OpenVINO cannot run ``spec`` given the host's devices and each one's
    OPTIMIZATION_CAPABILITIES (pure: the plugin passes what it probed)."""
    if spec.runtime != RUNTIME:
        return f"runtime {spec.runtime!r} is not {RUNTIME!r}"
    if spec.precision not in PRECISION_HINTS:
        return f"precision {spec.precision!r} is not one of {sorted(PRECISION_HINTS)}"
    if spec.hint and spec.hint not in PERFORMANCE_HINTS:
        return f"performance hint {spec.hint!r} is not one of {list(PERFORMANCE_HINTS)}"
    if spec.threads is not None and spec.threads < 0:
        return f"threads must not be negative, not {spec.threads}"
    if not device_present(spec.device, devices):
        return f"device {spec.device!r} is not available (have {sorted(devices)})"
    if spec.precision == "f32" and _family(spec.device) == "CPU":
        return None
    needed = CAPABILITIES[spec.precision]
    if needed not in capabilities(spec.device):
        return f"{spec.device} has no {needed} capability"
    return None


def unavailable() -> str | None:
    """Why this plugin cannot load here (the registry skips it then), or None."""
    return installed.sdk_problem(RUNTIME)


def _ov() -> Any:
    """The openvino module, imported on the first load (see the module docstring)."""
    import openvino

    return openvino


class OpenVinoRunner(Runner):
    key: ClassVar[str] = "openvino"
    platform: ClassVar[str] = "openvino"
    default_spec: ClassVar[CandidateSpec | None] = CandidateSpec(RUNTIME, "CPU", "f32")

    def __init__(self, spec: CandidateSpec | None = None) -> None:
        super().__init__(spec)
        self._compiled: Any = None
        self._output_names: tuple[str, ...] = ()
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        return unsupported_reason_for(
            spec, installed.openvino_devices(), installed.openvino_capabilities
        )

    @property
    def inference_precision(self) -> str:
        """The precision the compiled model runs at (``f32``, ``bf16``...); empty when not
        loaded."""
        return self.compiled_property("INFERENCE_PRECISION_HINT")

    def compiled_property(self, name: str) -> str:
        """A property of the compiled model as text; empty when not loaded."""
        compiled = self._compiled
        if compiled is None:
            return ""
        value = compiled.get_property(name)
        return str(value.get_type_name()) if hasattr(value, "get_type_name") else str(value)

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        self.set_signature(metadata)
        model_path = Path(bundle_dir) / str(metadata.model_file)
        spec = self.spec
        try:
            core = _ov().Core()
            if model_path.suffix.lower() == ".xml":
                model = core.read_model(str(model_path), str(model_path.with_suffix(".bin")))
            else:
                model = core.read_model(str(model_path))
            inputs = [set(port.get_names()) for port in model.inputs]
            outputs = [set(port.get_names()) for port in model.outputs]
            self._check_declared(inputs, outputs)
            if spec.precision == "int8" and not _is_quantized(model):
                raise ModelLoadError(
                    f"{model_path.name} is not quantized: int8 needs a quantized model"
                )
            compiled = core.compile_model(model, spec.device, compile_config(spec))
            drop_alt_stack()  # see agent/runners/altstack.py
        except ModelLoadError:
            raise
        except Exception as exc:  # RuntimeError and OpenVINO's own error types
            raise ModelLoadError(
                f"openvino cannot load {model_path.name} on {spec.key}: {_line(exc)}"
            ) from exc
        self._output_names = tuple(self._output_name(names, i) for i, names in enumerate(outputs))
        with self._lock:
            self._compiled, self._idle = compiled, []
        actual, wanted = self.inference_precision, PRECISION_HINTS[spec.precision]
        if actual != wanted:
            self.close()
            raise ModelLoadError(f"openvino compiled {model_path.name} at {actual}, not {wanted}")
        logger.debug("loaded %s as %s (%s)", model_path, spec.key, actual)

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
            results = _run_request(request, inputs)
        except Exception as exc:  # RuntimeError and OpenVINO's own error types
            raise InferenceError(f"openvino: {_line(exc)}") from exc
        self._give_back(compiled, request)
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        return {
            name: np.asarray(value) for name, value in zip(self._output_names, results, strict=True)
        }

    def close(self) -> None:
        with self._lock:
            self._compiled, self._idle = None, []
        drop_alt_stack()  # the freed model may have put back a stale one


def _run_request(request: Any, inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    """Run one inference; the first ones of the process one at a time (see
    ``_FIRST_INFER_LOCK``). share_outputs=False (the default) copies the results out.

    The calling thread keeps the cores it had: in a process that has not imported
    onnxruntime, OpenVINO leaves a thread that called ``infer`` on the cores the model
    was compiled on (seen: a thread on both cores after a load confined to one stayed on
    that one, and so did every thread it started), which would carry one model's fair
    share over to whatever the thread serves or loads next."""
    global _first_infer_done
    cores = _cores()
    try:
        if not _first_infer_done:
            with _FIRST_INFER_LOCK:
                results = tuple(request.infer(dict(inputs)).to_tuple())
                _first_infer_done = True
                return results
        return tuple(request.infer(dict(inputs)).to_tuple())
    finally:
        if cores is not None and _cores() != cores:
            try:
                os.sched_setaffinity(0, cores)
            except OSError as exc:  # those cores were taken from the process meanwhile
                logger.debug("cannot give the calling thread back cores %s: %s", cores, exc)


def _cores() -> set[int] | None:
    """The calling thread's cores, or None where the OS does not say."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def _family(device: str) -> str:
    """``GPU.1`` -> ``GPU``."""
    return device.split(".", 1)[0]


def _is_quantized(model: Any) -> bool:
    """Whether the model holds quantization: FakeQuantize ops (ONNX QuantizeLinear /
    DequantizeLinear read by OpenVINO) or int8 / uint8 / int4 constants."""
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind in ("FakeQuantize", "FakeConvert"):
            return True
        if kind == "Constant" and op.get_output_element_type(0).get_type_name() in (
            _QUANTIZED_TYPES
        ):
            return True
    return False


def _line(exc: BaseException) -> str:
    """OpenVINO's multi-line ``Exception from src/...`` text as one line: its last message."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception from ")]
    line = lines[-1] if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
