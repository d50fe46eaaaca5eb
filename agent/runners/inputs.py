"""Representative inputs of a model: what selection, the accuracy guard, the health gate and
warm-up run it on.

``input_sets`` builds several input sets (a dict of arrays per input name each). The first
is the one warm-up, timing and the health gate use; the others (other seeds) only feed
the accuracy guard. Where each comes from, in order:

1. the bundle's ``bootstrap.npz`` (the first set, as is); the generated sets take its
   shapes, draw floats in its ``[min, max]`` and copy its integer, boolean and string arrays;
2. the bundle's input hints (``model_store.InputHint``: ``shape``, ``range``, ``values``),
   which win over 1 for the generated sets;
3. defaults (``DEFAULTS`` below), for whatever 1 and 2 leave open.

Default dimensions (a dynamic dimension; a dimension name shared by several inputs gets
one size, bound first by hinted shapes): named like a batch (``batch``, ``batch_size``)
-> 1; named like height/width (``height``, ``width``, ``h``, ``w``) -> 224; otherwise by
position: the first dimension of a tensor of rank >= 2 -> 1 (batch), and so is a
vector's when another input has a dynamic batch (a per-item value, e.g. lengths); in a
rank-4 tensor the channel dimension (1 for NCHW; 3 for NHWC, recognised by a fixed last
dimension of at most 4) -> 3 and the two spatial ones -> 224; every other one -> 16 (a
sequence or feature length). A tensor of unknown rank is a vector of 16. Never 0, and
spatial dimensions are never 1.

Default values: floats uniform in [0, 1); integers named like a sample rate (``sr``,
``sample_rate``, ``sampling_rate``) -> 16000, named like a mask -> 1, uint8 (pixels)
uniform in [0, 255], else uniform in [0, 100) (token-id-like); booleans True (masks
usually mark what is valid); strings "".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent.runners.base import TensorSignature
from agent.runners.draws import Draws
from model_store.input_hints import batch_by_position, named_batch

if TYPE_CHECKING:
    import numpy as np

#: dynamic-dimension and value defaults (documented in docs/agent.md)
DEFAULTS: dict[str, Any] = {
    "batch": 1,
    "spatial": 224,
    "channels": 3,
    "sequence": 16,
    "float_range": (0.0, 1.0),
    "int_range": (0, 100),
    "sample_rate": 16000,
}

_SPATIAL_NAME = re.compile(r"(?i)^(h|w|.*height.*|.*width.*)$")
_SAMPLE_RATE_NAME = re.compile(r"(?i)(^|_)(sr|sample_?rate|sampling_?rate)$")
_MASK_NAME = re.compile(r"(?i)mask")


def _default_dims(sig: TensorSignature, names: Sequence[str | None], *, batched: bool) -> list[int]:
    """Positional defaults for every dimension of ``sig`` (fixed ones kept); ``batched``:
    another input has a dynamic batch, so a dynamic vector is a per-item value."""
    if sig.shape is None:
        return [DEFAULTS["sequence"]]
    rank = len(sig.shape)
    channel_axis = None
    if rank == 4:
        last = sig.shape[3]
        nhwc = (
            last is not None and last <= 4 and not (sig.shape[1] is not None and sig.shape[1] <= 4)
        )
        channel_axis = 3 if nhwc else 1
    dims: list[int] = []
    for axis, dim in enumerate(sig.shape):
        name = names[axis] if axis < len(names) else None
        if dim is not None:
            dims.append(dim)
        elif named_batch(name):  # (the rule edgectl push judges guessed dimensions by)
            dims.append(DEFAULTS["batch"])
        elif name and _SPATIAL_NAME.match(name):
            dims.append(DEFAULTS["spatial"])
        elif batch_by_position(axis, rank, batched=batched):
            dims.append(DEFAULTS["batch"])
        elif channel_axis is not None:
            dims.append(DEFAULTS["channels"] if axis == channel_axis else DEFAULTS["spatial"])
        else:
            dims.append(DEFAULTS["sequence"])
    return dims


def input_shapes(
    signatures: Sequence[TensorSignature],
    *,
    dim_names: Mapping[str, Sequence[str | None]] | None = None,
    hints: Mapping[str, Any] | None = None,
) -> dict[str, tuple[int, ...]]:
    """The shape of every input: a hinted shape, else defaults, a dimension name shared
    by several inputs taking one size (hinted shapes bind names first)."""
    dim_names = dim_names or {}
    hints = hints or {}
    bound: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    batched = any(
        s.shape is not None and len(s.shape) >= 2 and s.shape[0] is None for s in signatures
    )
    ordered = sorted(signatures, key=lambda s: getattr(hints.get(s.name), "shape", None) is None)
    for sig in ordered:
        names = list(dim_names.get(sig.name, ()))
        hinted = getattr(hints.get(sig.name), "shape", None)
        dims = list(hinted) if hinted is not None else _default_dims(sig, names, batched=batched)
        for axis, name in enumerate(names[: len(dims)]):
            if not name or (sig.shape is not None and sig.shape[axis] is not None):
                continue
            if hinted is None and name in bound:
                dims[axis] = bound[name]
            bound.setdefault(name, dims[axis])
        shapes[sig.name] = tuple(dims)
    return {sig.name: shapes[sig.name] for sig in signatures}


def _values(
    sig: TensorSignature,
    shape: tuple[int, ...],
    hint: Any,
    rng: Draws,
    index: int,
) -> np.ndarray:
    """One generated array of ``sig`` (``index``: which set, to cycle hinted values)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    dtype, kind = sig.dtype, sig.dtype.kind
    allowed = getattr(hint, "values", None)
    span = getattr(hint, "range", None)
    if kind == "b":
        return np.ones(shape, dtype=np.bool_)
    if kind in "USO":
        return np.full(shape, "", dtype=object)
    if allowed:
        if not shape:  # a scalar: set i takes the i-th allowed value
            return np.asarray(allowed[index % len(allowed)], dtype=dtype)
        return rng.choice(np.asarray(allowed), shape).astype(dtype)
    if kind in "iu":
        if span is None and _SAMPLE_RATE_NAME.search(sig.name) and int(np.prod(shape)) == 1:
            return np.full(shape, DEFAULTS["sample_rate"], dtype=dtype)
        if span is None and _MASK_NAME.search(sig.name):
            return np.ones(shape, dtype=dtype)
        if span is None:  # pixels, else token-id-like
            low, high = DEFAULTS["int_range"]
            span = (0, 255) if dtype == np.uint8 else (low, high - 1)
        low, high = span
        return rng.integers(int(low), int(high), shape).astype(dtype)
    low, high = span if span is not None else DEFAULTS["float_range"]
    return rng.uniform(float(low), float(high), shape).astype(dtype)


def _from_bootstrap(array: np.ndarray, rng: Draws) -> np.ndarray:
    """Another input like a bootstrap array: floats drawn in its range, others copied."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    if array.dtype.kind != "f" or array.size == 0:
        return array.copy()
    finite = array[np.isfinite(array)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return rng.uniform(low, high, array.shape).astype(array.dtype)


def input_sets(
    signatures: Sequence[TensorSignature],
    *,
    count: int = 1,
    dim_names: Mapping[str, Sequence[str | None]] | None = None,
    hints: Mapping[str, Any] | None = None,
    bootstrap: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """``count`` input sets (at least one): the bootstrap first if given, then sets made
    from the hints and the defaults, each with its own seed (``seed + index``)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    hints = hints or {}
    shapes = input_shapes(signatures, dim_names=dim_names, hints=hints)
    sets: list[dict[str, np.ndarray]] = []
    if bootstrap is not None:
        sets.append(dict(bootstrap))
    for index in range(len(sets), max(1, count)):
        rng = Draws(seed + index)
        one: dict[str, np.ndarray] = {}
        for sig in signatures:
            hint = hints.get(sig.name)
            if bootstrap is not None and sig.name in bootstrap and hint is None:
                one[sig.name] = _from_bootstrap(np.asarray(bootstrap[sig.name]), rng)
                continue
            shape = shapes[sig.name]
            if (
                bootstrap is not None
                and sig.name in bootstrap
                and getattr(hint, "shape", None) is None
            ):
                shape = tuple(np.asarray(bootstrap[sig.name]).shape)
            one[sig.name] = _values(sig, shape, hint, rng, index)
        sets.append(one)
    return sets


def describe(inputs: Mapping[str, np.ndarray], *, most: int = 6) -> str:
    """``x float32[1,3,224,224], sr int64[]``: what an input set was, for error messages
    (the first ``most`` inputs, then how many more)."""
    import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

    shown = [
        f"{name} {np.asarray(a).dtype}[{','.join(str(d) for d in np.asarray(a).shape)}]"
        for name, a in list(inputs.items())[:most]
    ]
    if len(inputs) > most:
        shown.append(f"{len(inputs) - most} more")
    return ", ".join(shown)


#: what an error about generated inputs tells the operator to do
BETTER_INPUTS = "ship bootstrap.npz or set --input-shape/--input-range/--input-value"
