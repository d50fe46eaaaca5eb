"""The ONNX Runtime session every ORT plugin shares; the plugins differ only in their EP.

``OrtRunner`` creates one ``InferenceSession`` for its candidate: graph optimizations
ALL, ``intra_op_num_threads`` from ``spec.threads``, the provider list its plugin builds
(``ort_providers``). ONNX Runtime falls back to the CPU EP when the requested EP cannot
be created (its Python layer even retries on CPU by itself), so the session is created
with ``enable_fallback=0`` and the runner then checks ``session.get_providers()``: if
its EP is not first, the load is refused, so a "CUDA" candidate is never secretly CPU.
(Single nodes an EP cannot take still run on the CPU EP inside the session: that is how
ORT partitions graphs, and the measured selection sees its cost.)

External data must be files of the verified bundle, checked before ORT reads the model
(from the protobuf's wire format, ``model_store.onnx_wire``: without onnx, ~14 MB).

onnxruntime is imported on the first load, not with this module: a plugin is
discovered without them (``ort_unavailable``, from the runtime probe of
``agent.runners.installed``), and an agent that serves with OpenVINO never loads them.

Inputs: where the declared signature is the session's (``same_signature``), ``infer``
hands the feed to ONNX Runtime at once, which checks names, dtypes, ranks and fixed
dimensions itself; only when it refuses one does ``check_inputs`` run, to say why in one
line (InvalidInput). Otherwise ``check_inputs`` runs first. On a 6 us model the checks
were a third of the call (``bench.inference``).

Spinning: the session keeps ONNX Runtime's default, intra-op workers that spin a while
after each run waiting for the next. That costs CPU between requests (on the loaded
2-core box a spinning worker took a core from the local API's JSON parse, and
``bench.peers``' JSON figure was about twice as bad), but switching it off costs every
run a wake-up: measured back to back on ``bench.selection``'s models, +9 % to +47 % p50
with ``session.intra_op.allow_spinning`` 0, +1 % to +31 % with
``session.force_spinning_stop`` 1 (the 30 us GRU paying most). Selection measures runs
back to back and the plain ORT default must stay a candidate, so the default stays.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.errors import InferenceError, InvalidInput, ModelLoadError
from agent.runners import installed
from agent.runners.base import Runner, TensorSignature, check_inputs
from agent.runners.ort_providers import CPU_EP, RUNTIME, Providers
from agent.runners.spec import CandidateSpec
from model_store import ModelStoreError
from model_store.onnx_wire import external_data_locations

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: ORT's own exception classes (a private module; each derives from Exception directly,
#: so none is a RuntimeError): EPFail, for one, is what a failing EP raises at run time.
_STATE_ERRORS = (
    "Fail",
    "InvalidArgument",
    "EPFail",
    "RuntimeException",
    "EngineError",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NotImplemented",
    "NoModel",
    "ModelLoaded",
)


def ort_unavailable(provider: str) -> str | None:
    """Why an ORT plugin whose EP is ``provider`` cannot load here (None: it can)."""
    problem = installed.sdk_problem(RUNTIME)
    if problem is not None:
        return problem
    if provider not in installed.ort_providers():
        return f"onnxruntime {installed.ort_version()} has no {provider}"
    return None


def _ort() -> Any:
    """The onnxruntime module, imported on first use (see the module docstring)."""
    import onnxruntime

    return onnxruntime


def _load_errors() -> tuple[type[BaseException], ...]:
    return (*_ort_errors(), OSError)


@functools.cache
def _ort_errors() -> tuple[type[BaseException], ...]:
    """ORT's exception classes, plus RuntimeError and ValueError."""
    errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError)
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:  # pragma: no cover - depends on the ORT build
        return errors
    return (*(getattr(state, name) for name in _STATE_ERRORS if hasattr(state, name)), *errors)


class OrtRunner(Runner):
    """ONNX Runtime with one execution provider (``provider``); plugins subclass it."""

    platform: ClassVar[str] = "onnxruntime_onnx"
    #: The execution provider a session of this plugin must run on.
    provider: ClassVar[str] = CPU_EP

    def __init__(self, spec: CandidateSpec | None = None) -> None:
        super().__init__(spec)
        self._session: Any = None
        self._output_names: list[str] = []  # read once at load: not per inference
        #: ORT's own input checks are ours (the declared signature is the model's)
        self._ort_checks = False
        #: every output is a tensor (ORT returns ndarrays: nothing to convert)
        self._tensor_outputs = False
        self._run: Any = None

    @classmethod
    def provider_list(cls, spec: CandidateSpec) -> Providers:
        """The ``providers`` argument for this candidate (first: this plugin's EP)."""
        return [(cls.provider, {})]

    def session_options(self) -> Any:
        ort = _ort()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.spec.threads:  # None or 0: ORT's own choice (one per physical core)
            options.intra_op_num_threads = self.spec.threads
        return options

    @property
    def session(self) -> Any:
        """The live ``InferenceSession`` (None before ``load`` and after ``close``)."""
        return self._session

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        self.set_signature(metadata)
        model_path = Path(bundle_dir) / str(metadata.model_file)
        _check_external_data(model_path, Path(bundle_dir))
        try:
            session = _ort().InferenceSession(
                str(model_path),
                sess_options=self.session_options(),
                providers=self.provider_list(self.spec),
                enable_fallback=0,
            )
        except _load_errors() as exc:
            raise ModelLoadError(
                f"onnxruntime cannot load {model_path.name} on {self.spec.key}: {_line(exc)}"
            ) from exc
        used = list(session.get_providers())
        if not used or used[0] != self.provider:
            raise ModelLoadError(
                f"onnxruntime runs {model_path.name} on {used}, not {self.provider}: "
                "refusing a silent fallback"
            )
        self._check_declared(session)
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        self._ort_checks = same_signature(self.inputs, session.get_inputs())
        # ``InferenceSession.run`` validates the feed again in Python (missing names,
        # OrtValue ownership, graph capture: nothing this runner's feeds need) and then
        # calls its C++ session's ``run``: about 1 us of a 6 us model. Where the session
        # exposes that C++ session (``_sess``, every ONNX Runtime release since 1.0) and
        # ORT's checks are ours, the runner calls it directly; otherwise ``run``.
        inner: Any = getattr(session, "_sess", None)
        self._run = getattr(inner, "run", None) if self._ort_checks else None
        self._tensor_outputs = all(o.type.startswith("tensor(") for o in session.get_outputs())
        logger.debug("loaded %s as %s with %s", model_path, self.spec.key, used)

    def _check_declared(self, session: Any) -> None:
        declared_in = {s.name for s in self.inputs}
        actual_in = {i.name for i in session.get_inputs()}
        if declared_in != actual_in:
            raise ModelLoadError(
                f"declared inputs {sorted(declared_in)} differ from the model's {sorted(actual_in)}"
            )
        actual_out = {o.name for o in session.get_outputs()}
        missing = sorted({s.name for s in self.outputs} - actual_out)
        if missing:
            raise ModelLoadError(f"declared output {missing[0]!r} is not produced by the model")

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise InferenceError("model is not loaded")
        feed = inputs if type(inputs) is dict else dict(inputs)
        if not self._ort_checks or len(feed) != len(self.inputs):
            check_inputs(self.inputs, feed)  # ORT's C++ session does not see a missing one
        names = self._output_names
        try:
            run = self._run
            results = run(names, feed, None) if run is not None else session.run(names, feed)
        except _ort_errors() as exc:
            if self._ort_checks:  # ORT refused the inputs? say why in our words
                check_inputs(self.inputs, feed)
            if type(exc).__name__ == "InvalidArgument":
                raise InvalidInput(_line(exc)) from exc
            raise InferenceError(f"onnxruntime: {_line(exc)}") from exc
        if self._tensor_outputs:
            return dict(zip(names, results, strict=True))
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}

    def close(self) -> None:
        self._session, self._run = None, None


@functools.cache
def _ort_dtypes() -> dict[str, np.dtype[Any]]:
    """ONNX Runtime's tensor type names -> numpy dtypes (the types ``same_signature`` knows)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    return {
        "tensor(float)": np.dtype(np.float32),
        "tensor(double)": np.dtype(np.float64),
        "tensor(float16)": np.dtype(np.float16),
        "tensor(int64)": np.dtype(np.int64),
        "tensor(int32)": np.dtype(np.int32),
        "tensor(int16)": np.dtype(np.int16),
        "tensor(int8)": np.dtype(np.int8),
        "tensor(uint64)": np.dtype(np.uint64),
        "tensor(uint32)": np.dtype(np.uint32),
        "tensor(uint16)": np.dtype(np.uint16),
        "tensor(uint8)": np.dtype(np.uint8),
        "tensor(bool)": np.dtype(np.bool_),
    }


def same_signature(declared: Sequence[TensorSignature], actual: Sequence[Any]) -> bool:
    """Whether the declared inputs are exactly the session's (names, dtypes, ranks, fixed
    dimensions): then ONNX Runtime's own checks of a feed (unknown or missing name, dtype,
    rank, a fixed dimension) are ``check_inputs``'s, and the runner leaves them to it,
    calling ``check_inputs`` only to word a refusal."""
    if len(declared) != len(actual):
        return False
    by_name = {a.name: a for a in actual}
    for sig in declared:
        node = by_name.get(sig.name)
        if node is None or _ort_dtypes().get(node.type) != sig.dtype or sig.shape is None:
            return False
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
        if dims != sig.shape:
            return False
    return True


def _check_external_data(model_path: Path, bundle_dir: Path) -> None:
    """External data must be files of this (verified) bundle: never a path that leaves it,
    whatever the ONNX Runtime version would do with one."""
    try:
        locations = external_data_locations(model_path)
    except ModelStoreError as exc:
        raise ModelLoadError(f"{model_path.name}: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"{model_path.name} is not readable: {_line(exc)}") from exc
    for location in locations:
        if not (bundle_dir / location).is_file():
            raise ModelLoadError(
                f"{model_path.name}: external data {location!r} is not in the bundle"
            )


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
