"""The Runner interface every backend plugin implements, and tensor signatures.

A runner is created for one candidate (a ``CandidateSpec``: runtime, device, precision,
hint, threads; default: the plugin's ``default_spec``), ``load``-ed once with a verified
bundle directory and its metadata, serves ``infer`` from many threads, and is
``close``-d when retired. Its ``backend`` is the candidate's key, e.g.
``openvino:CPU:bf16``: what the device reports, and what it was measured as.

``supports(spec)`` says, from cheap checks and without a model, whether the plugin can
run that candidate on this host (``unsupported_reason`` says why not); the constructor
refuses a spec its plugin does not support (``RunnerUnavailable``), so a runner never
silently runs something other than what it was created for.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.errors import InvalidInput, ModelLoadError, RunnerUnavailable
from agent.runners.spec import CandidateSpec

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: model_store's shape for a tensor of unknown rank.
UNKNOWN_RANK = "..."


@dataclass(frozen=True)
class TensorSignature:
    """One declared input or output: name, numpy dtype and shape.

    A ``None`` dimension is dynamic; ``shape`` itself is None when the rank is unknown.
    """

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None

    @classmethod
    def from_spec(cls, spec: Any) -> TensorSignature:
        """From a model_store TensorSpec (``name``, ``dtype`` name, ``shape`` list)."""
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        try:
            dtype = np.dtype(str(spec.dtype))
        except TypeError as exc:
            raise ModelLoadError(f"tensor {spec.name!r}: unknown dtype {spec.dtype!r}") from exc
        if list(spec.shape) == [UNKNOWN_RANK]:
            return cls(name=str(spec.name), dtype=dtype, shape=None)
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in spec.shape)
        return cls(name=str(spec.name), dtype=dtype, shape=dims)

    def check(self, array: np.ndarray) -> None:
        """InvalidInput (one line) unless ``array`` fits this signature."""
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        if not isinstance(array, np.ndarray | np.generic):
            raise InvalidInput(
                f"input {self.name!r}: expected a numpy array, not {type(array).__name__}"
            )
        if array.dtype != self.dtype:
            raise InvalidInput(f"input {self.name!r}: dtype {array.dtype}, expected {self.dtype}")
        if self.shape is None:
            return
        if array.ndim != len(self.shape):
            raise InvalidInput(
                f"input {self.name!r}: rank {array.ndim}, expected {len(self.shape)} "
                f"(shape {list(array.shape)} vs {self.shape_text()})"
            )
        for got, want in zip(array.shape, self.shape, strict=True):
            if want is not None and got != want:
                raise InvalidInput(
                    f"input {self.name!r}: shape {list(array.shape)}, expected {self.shape_text()}"
                )

    def shape_text(self) -> str:
        if self.shape is None:
            return "[...]"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def check_inputs(signatures: Sequence[TensorSignature], inputs: Mapping[str, np.ndarray]) -> None:
    """InvalidInput unless ``inputs`` has exactly the declared names with fitting tensors."""
    declared = {s.name: s for s in signatures}
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise InvalidInput(f"unknown input {unknown[0]!r}; model inputs are {sorted(declared)}")
    missing = sorted(set(declared) - set(inputs))
    if missing:
        raise InvalidInput(f"missing input {missing[0]!r}")
    for name, array in inputs.items():
        declared[name].check(array)


class Runner(ABC):
    """A backend that serves one model as one candidate. Subclasses set ``key``,
    ``default_spec`` and ``unsupported_reason``; a class with its own ``key`` in a module
    of ``agent/runners/plugins/`` is registered when that module is discovered."""

    key: ClassVar[str]
    #: KServe v2 ``platform`` string of models served by this runner.
    platform: ClassVar[str] = "unknown"
    #: The candidate a runner created without a spec runs (plugins set it).
    default_spec: ClassVar[CandidateSpec | None] = None

    def __init__(self, spec: CandidateSpec | None = None) -> None:
        spec = self.own_default_spec() if spec is None else spec
        reason = self.unsupported_reason(spec)
        if reason is not None:
            raise RunnerUnavailable(f"runner {self.key!r} cannot run {spec.key}: {reason}")
        self.spec: CandidateSpec = spec
        self.inputs: tuple[TensorSignature, ...] = ()
        self.outputs: tuple[TensorSignature, ...] = ()

    @classmethod
    def supports(cls, spec: CandidateSpec) -> bool:
        """Whether this plugin can run ``spec`` on this host, as far as cheap checks tell
        (no model is loaded: a model may still be refused by ``load``)."""
        return cls.unsupported_reason(spec) is None

    @classmethod
    def own_default_spec(cls) -> CandidateSpec:
        """``default_spec``, or for a runner without one (a test fake) ``<key>:default:f32``."""
        if cls.default_spec is not None:
            return cls.default_spec
        return CandidateSpec(runtime=cls.key, device="default", precision="f32")

    @classmethod
    def unsupported_reason(cls, spec: CandidateSpec) -> str | None:
        """Why this plugin cannot run ``spec`` here (one line), or None if it can.
        Plugins override this; the base runs its default candidate only."""
        default = cls.own_default_spec()
        return None if spec == default else f"only {default.key} is supported"

    @property
    def backend(self) -> str:
        """What the device reports as its backend: the candidate's key."""
        return self.spec.key

    def set_signature(self, metadata: Any) -> None:
        """Take the declared signature from bundle metadata (``inputs`` / ``outputs``)."""
        self.inputs = tuple(TensorSignature.from_spec(s) for s in metadata.inputs)
        self.outputs = tuple(TensorSignature.from_spec(s) for s in metadata.outputs)

    @abstractmethod
    def load(self, bundle_dir: Path, metadata: Any) -> None:
        """Load the model of a verified bundle; ModelLoadError on failure."""

    @abstractmethod
    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; InvalidInput for bad tensors, InferenceError if the backend fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources; idempotent."""
