"""Input hints in ``edgefleet.json``: what a real input of the model looks like.

Devices build the inputs of backend selection and of the health gate from, in order, the
bundle's ``bootstrap.npz``, these hints, and then defaults (``agent.runners.inputs``).
``input_hints`` maps an input name to an ``InputHint``:

* ``shape``: a concrete shape (ints >= 1; ``[]`` for a scalar) of the model's rank that
  keeps its fixed dimensions, e.g. ``[1, 3, 640, 640]``;
* ``range``: ``[low, high]`` (low < high), the values drawn uniformly in it (integers
  inclusive of both ends);
* ``values``: the allowed values (e.g. a sample rate ``[16000]``), drawn among them.

``range`` and ``values`` exclude each other; boolean and string inputs take a ``shape``
only. Unknown fields are refused, so a typo never silently changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator


def named_batch(name: str | None) -> bool:
    """A dimension name that says batch wherever it is (``batch``, ``batch_size``); ``N``
    alone does not (a vector ``[n]`` is n samples)."""
    return bool(name) and "batch" in str(name).lower()


def batch_by_position(axis: int, rank: int, *, batched: bool) -> bool:
    """A dynamic dimension that is a batch by its place: the first of a tensor of rank >= 2,
    or of a vector beside inputs with a dynamic batch (``batched``: a per-item value, e.g.
    lengths). Devices measure a batch of 1 (``agent.runners.inputs``), so ``edgectl push``
    does not warn about one."""
    return axis == 0 and (rank >= 2 or batched)


#: at most this many allowed values per input
MAX_HINT_VALUES = 64
#: a hinted shape may hold at most this many elements (devices allocate it)
MAX_HINT_ELEMENTS = 64 * 1024 * 1024

Number = StrictInt | StrictFloat


class InputHint(BaseModel):
    """What one model input looks like; every field is optional (at least one is set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: list[Annotated[StrictInt, Field(ge=1)]] | None = Field(default=None, max_length=16)
    range: tuple[Number, Number] | None = None
    values: list[Number] | None = Field(default=None, min_length=1, max_length=MAX_HINT_VALUES)

    @model_validator(mode="after")
    def _consistent(self) -> InputHint:
        if self.shape is None and self.range is None and self.values is None:
            raise ValueError("give a shape, a range or values")
        if self.range is not None and self.values is not None:
            raise ValueError("give a range or values, not both")
        if self.range is not None:
            low, high = self.range
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise ValueError(f"range [{low}, {high}] must be finite with low < high")
        if self.values is not None and not all(math.isfinite(v) for v in self.values):
            raise ValueError("values must be finite numbers")
        if self.shape is not None and math.prod(self.shape) > MAX_HINT_ELEMENTS:
            raise ValueError(f"shape {self.shape} holds more than {MAX_HINT_ELEMENTS} elements")
        return self


def check_hints_fit(hints: Mapping[str, InputHint], inputs: Sequence[Any]) -> None:
    """ValueError (one line) unless every hint names a model input and fits it.

    ``inputs`` are the bundle's ``TensorSpec`` s (``name``, ``dtype``, ``shape``)."""
    declared = {spec.name: spec for spec in inputs}
    for name, hint in hints.items():
        spec = declared.get(name)
        if spec is None:
            raise ValueError(f"input hint for {name!r}: the model's inputs are {sorted(declared)}")
        kind = _kind(spec.dtype)
        if kind in "bO" and (hint.range is not None or hint.values is not None):
            raise ValueError(
                f"input hint for {name!r}: a boolean or string input ({spec.dtype}) takes "
                "a shape only"
            )
        numbers = [*(hint.range or ()), *(hint.values or ())]
        if kind in "iu" and any(float(v) != int(v) for v in numbers):
            raise ValueError(
                f"input hint for {name!r}: an integer input ({spec.dtype}) takes integers"
            )
        if hint.shape is not None and list(spec.shape) != ["..."]:
            if len(hint.shape) != len(spec.shape):
                raise ValueError(
                    f"input hint for {name!r}: shape {hint.shape} has rank {len(hint.shape)}, "
                    f"the model's {spec.shape} has rank {len(spec.shape)}"
                )
            for got, want in zip(hint.shape, spec.shape, strict=True):
                if isinstance(want, int) and want >= 0 and got != want:
                    raise ValueError(
                        f"input hint for {name!r}: shape {hint.shape} does not keep the "
                        f"model's fixed dimensions {spec.shape}"
                    )


def _kind(dtype: str) -> str:
    """numpy's kind letter of a dtype name, without importing numpy ('O' for others)."""
    if dtype == "bool":
        return "b"
    if dtype.startswith(("int", "uint")):
        return "u" if dtype.startswith("u") else "i"
    if dtype.startswith(("float", "bfloat")):
        return "f"
    return "O"
