"""Binary OIP requests whose JSON header was seen before: decoded without parsing it again.

A client of the binary tensor data extension sends the same JSON header with every
request of one shape (tritonclient builds it from the inputs' names, shapes and
datatypes; ``bench.rest_paths`` likewise): only the tensor bytes after it change. Parsing
that header (JSON, then the pydantic request model) and checking it against the model's
inputs are pure functions of the header's bytes and the model, and on the 2-core box of
``docs/benchmarks.md`` they cost tens of microseconds of a request right after a heavy
inference has evicted the interpreter's caches. So once a header has been decoded in full
for a model, with every input binary, ``Plans`` keeps what came out of it: the parsed
``InferenceRequest`` and, per input, its name, datatype, numpy dtype, shape and byte
count. The next request with the same header bytes for the same model (not a version
swapped in since: the plan holds a weak reference to the model it was made for) only
cuts its binary part into arrays with ``oip_binary.decode_tensor``, which still checks
what depends on the bytes (each size, BOOL values, alignment). Anything else (a
different model, a binary part of another total size, a JSON input) is decoded in full
by ``agent.serving.oip``, so every answer and every error is the same as without plans.

At most ``KEEP`` plans are kept (the table is emptied when full: a client that never
repeats a header gains nothing and costs nothing more).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the codecs load numpy: imported once a request is decoded
    import numpy as np

    from agent.serving import oip
    from agent.serving.models import LoadedModel

KEEP = 64
#: answers kept per plan (a model whose output shapes vary keeps a few)
KEEP_ANSWERS = 4


@dataclass(frozen=True)
class _Input:
    name: str
    datatype: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]  # a tuple: what numpy reshapes to fastest
    size: int


@dataclass(frozen=True)
class Plan:
    """What decoding one header for one model gave, but the arrays."""

    model: weakref.ref[LoadedModel]
    request: oip.InferenceRequest
    inputs: tuple[_Input, ...]
    size: int  # the binary part's length: the inputs' sizes added up
    #: (name, dtype, shape) of each output -> (the answer's JSON header, outputs in order)
    answers: dict[tuple[Any, ...], tuple[bytes, tuple[str, ...]]] = field(default_factory=dict)

    def decode(self, binary: memoryview) -> dict[str, np.ndarray]:
        """The input arrays over ``binary`` (of ``size`` bytes)."""
        # loaded already (a plan follows a decode); the module, not ``from agent.serving
        # import``, whose fromlist costs a Python call
        from agent.serving.oip_binary import decode_tensor

        arrays: dict[str, np.ndarray] = {}
        at = 0
        for i in self.inputs:
            raw = binary[at : at + i.size]
            arrays[i.name] = decode_tensor(i.name, i.datatype, i.dtype, i.shape, raw)
            at += i.size
        return arrays

    def answer(self, outputs: Mapping[str, np.ndarray]) -> tuple[bytes, list[Any]] | None:
        """(JSON header, binary buffers) of the answer, when one was kept for outputs of
        these names, dtypes and shapes (its JSON header is then the same bytes)."""
        kept = self.answers.get(_kinds(outputs))
        if kept is None:
            return None
        from agent.serving.oip_binary import tensor_data  # loaded already, as in ``decode``

        payload, names = kept
        if len(names) == 1:  # no list comprehension (a frame of its own) for one output
            return payload, [tensor_data(outputs[names[0]])]
        return payload, [tensor_data(outputs[n]) for n in names]

    def keep_answer(
        self, outputs: Mapping[str, np.ndarray], payload: bytes, body: Mapping[str, Any]
    ) -> None:
        """Keep ``payload``, the JSON header of an answer ``body``, when it depends on the
        outputs' names, dtypes and shapes only: every output in it binary and numeric."""
        entries = body["outputs"]
        if any("data" in e or e["datatype"] == "BYTES" for e in entries):
            return
        if len(self.answers) >= KEEP_ANSWERS:
            self.answers.clear()
        self.answers[_kinds(outputs)] = (payload, tuple(e["name"] for e in entries))


def _kinds(outputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    """(name, dtype, shape) of each output, in order: what a kept answer depends on."""
    if len(outputs) == 1:  # no generator (a frame of its own) for one output
        ((name, array),) = outputs.items()
        return ((name, array.dtype, array.shape),)
    return tuple((n, a.dtype, a.shape) for n, a in outputs.items())


class Plans:
    """JSON header bytes -> ``Plan``, for the binary requests the local API decodes."""

    def __init__(self) -> None:
        self._plans: dict[bytes, Plan] = {}
        self._lock = threading.Lock()

    def knows(self, header: bytes) -> bool:
        """Whether ``header`` decoded before (so it parses: no need to parse it first)."""
        return header in self._plans

    def find(self, header: bytes, model: LoadedModel, binary: memoryview | None) -> Plan | None:
        """The plan for ``header`` if it was made for ``model`` and fits ``binary``."""
        plan = self._plans.get(header)
        if plan is None or binary is None or len(binary) != plan.size:
            return None
        return plan if plan.model() is model else None

    def keep(
        self,
        header: bytes,
        model: LoadedModel,
        request: oip.InferenceRequest,
        binary: memoryview | None,
    ) -> None:
        """Remember a header ``request`` came from, once it decoded for ``model`` without
        an error; nothing when an input's data is JSON (or there is no binary part)."""
        if binary is None:
            return
        from agent.serving import oip, oip_binary  # loaded already: it follows a decode

        inputs: list[_Input] = []
        for tensor in request.inputs:
            size = oip_binary.binary_size(tensor.name, tensor.parameters)
            if size is None:
                return
            dtype = oip.NUMPY_DTYPES[tensor.datatype]
            inputs.append(_Input(tensor.name, tensor.datatype, dtype, tuple(tensor.shape), size))
        plan = Plan(weakref.ref(model), request, tuple(inputs), len(binary))
        with self._lock:
            if len(self._plans) >= KEEP:
                self._plans.clear()
            self._plans[header] = plan
