"""The Open Inference Protocol binary tensor data extension (Triton / KServe v2), on buffers.

A request with the extension carries the header ``Inference-Header-Content-Length: N``:
the first N bytes of the body are the JSON inference request, the rest is the raw data
of every input whose ``parameters`` hold ``binary_data_size``, concatenated in the
order of ``inputs``. Tensor data is little-endian, row-major, without padding; BOOL is
one byte (0 or 1) per element; BYTES elements are each a 4-byte little-endian length
followed by the bytes. An answer with binary outputs carries the same header and
``parameters.binary_data_size`` on each binary output, with content type
``application/octet-stream``.

Decoding is zero-copy: an input is ``np.frombuffer`` over the request body (the local
API allocates the body so that the binary part starts 64-byte aligned; an input that
still is not aligned for its dtype is copied). Every size is checked against the
declared shape and datatype first; anything wrong is ``InvalidInput`` (one line, HTTP
400). Encoding hands out ``memoryview``s of the output arrays, written to the socket
without being joined.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from ctypes import addressof, c_char
from typing import Any

import numpy as np

from agent.errors import InvalidInput

HEADER = "Inference-Header-Content-Length"
#: ``HEADER`` as a key of the (lower-cased) request headers
HEADER_KEY = HEADER.lower()
#: request-level flag: every output binary unless an output says otherwise
BINARY_OUTPUT = "binary_data_output"
#: per requested output: return it as binary
BINARY_DATA = "binary_data"
#: per input / output tensor: the size of its binary data in bytes
BINARY_SIZE = "binary_data_size"
CONTENT_TYPE = "application/octet-stream"
ALIGNMENT = 64

_LITTLE = sys.byteorder == "little"
_LENGTH = struct.Struct("<I")


def split_body(body: memoryview, header_length: str | None) -> tuple[memoryview, memoryview | None]:
    """(JSON part, binary part or None) of a request body."""
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > len(body):
        raise InvalidInput(f"bad {HEADER} {header_length[:40]!r} for a body of {len(body)} bytes")
    n = int(text)
    return body[:n], body[n:]


def binary_size(name: str, parameters: dict[str, Any] | None) -> int | None:
    """The ``binary_data_size`` an input declares, or None if its data is JSON."""
    if not parameters or BINARY_SIZE not in parameters:
        return None
    size = parameters[BINARY_SIZE]
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input {name!r}: {BINARY_SIZE} must be a non-negative integer")
    return size


def input_slices(inputs: Sequence[Any], binary: memoryview | None) -> list[memoryview | None]:
    """Each request input's slice of the binary part (None where its data is JSON), the
    sizes checked to add up to exactly the binary part. ``inputs``: ``RequestInput``s."""
    slices: list[memoryview | None] = []
    at = 0
    for tensor in inputs:
        size = binary_size(tensor.name, tensor.parameters)
        if size is None:
            slices.append(None)
            continue
        if tensor.data is not None:
            raise InvalidInput(f"input {tensor.name!r}: both data and {BINARY_SIZE}")
        if binary is None:
            raise InvalidInput(
                f"input {tensor.name!r} has {BINARY_SIZE} but the request has no {HEADER} header"
            )
        slices.append(binary[at : at + size])
        at += size
    if binary is not None and at != len(binary):
        raise InvalidInput(
            f"binary data is {len(binary)} bytes, the inputs' {BINARY_SIZE} add up to {at}"
        )
    return slices


def flag(where: str, parameters: dict[str, Any] | None, key: str) -> bool | None:
    """A boolean parameter (``binary_data``, ``binary_data_output``), None if absent."""
    if not parameters or key not in parameters:
        return None
    value = parameters[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: parameter {key} must be true or false")
    return value


def decode_tensor(
    name: str, datatype: str, dtype: np.dtype[Any], shape: Sequence[int], raw: memoryview
) -> np.ndarray:
    """An input tensor over ``raw`` (no copy when aligned), its size checked first."""
    count = math.prod(shape)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input {name!r}: {BINARY_SIZE} {len(raw)}, expected {expected} bytes "
            f"for {datatype} {list(shape)}"
        )
    if dtype.kind == "b":
        flat = np.frombuffer(raw, dtype=np.uint8)
        if flat.size and int(flat.max()) > 1:
            raise InvalidInput(f"input {name!r}: BOOL bytes must be 0 or 1")
        array = flat.view(np.bool_)
    elif _LITTLE and dtype.byteorder != ">":  # native is little-endian: no new dtype
        array = np.frombuffer(raw, dtype=dtype)
    else:  # pragma: no cover - big-endian hosts (or a big-endian dtype)
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        if not _LITTLE:
            array = array.astype(dtype)
    if not array.flags.aligned:
        array = array.copy()
    # a tuple: numpy converts a list shape on a slower path (~10 us right after an
    # inference, docs/benchmarks.md); ``Plan`` keeps its shapes as tuples
    return array.reshape(shape if type(shape) is tuple else tuple(shape))


def aligned_body(header_length: str | None, length: int) -> memoryview:
    """A writable, uninitialised body buffer of ``length`` bytes whose binary part (after
    the JSON header) starts ``ALIGNMENT``-aligned, so inputs decode without a copy."""
    raw = np.empty(length + ALIGNMENT, dtype=np.uint8)
    json_length = 0
    if header_length is not None and header_length.isascii() and header_length.isdigit():
        json_length = min(int(header_length), length)
    # the address through ctypes' buffer call (``ndarray.ctypes.data`` runs numpy's
    # Python-level helper, ``__array_interface__`` builds a dict: 2-3x as long)
    address = addressof(c_char.from_buffer(raw))  # type: ignore[arg-type]  # numpy: no Buffer stub
    pad = -(address + json_length) % ALIGNMENT
    return raw.data[pad : pad + length]


def serialize_bytes(array: np.ndarray) -> bytes:
    """BYTES tensor data: each element as a 4-byte little-endian length + its bytes."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts += (_LENGTH.pack(len(data)), data)
    return b"".join(parts)


def deserialize_bytes(name: str, raw: memoryview, count: int) -> np.ndarray:
    """``count`` BYTES elements (object array of bytes), each length checked."""
    items: list[bytes] = []
    at = 0
    for _ in range(count):
        if at + 4 > len(raw):
            raise InvalidInput(f"input {name!r}: BYTES data ends inside an element length")
        (size,) = _LENGTH.unpack_from(raw, at)
        at += 4
        if at + size > len(raw):
            raise InvalidInput(f"input {name!r}: BYTES element of {size} bytes overruns the data")
        items.append(bytes(raw[at : at + size]))
        at += size
    if at != len(raw):
        raise InvalidInput(f"input {name!r}: {len(raw) - at} bytes after the last BYTES element")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def tensor_data(array: np.ndarray) -> memoryview:
    """The binary data of a numeric tensor: its memory, little-endian, row-major.

    A C-contiguous little-endian array (what a backend returns) is handed out as a byte
    view of itself: one buffer call, where the four numpy calls below cost tens of
    microseconds each right after an inference evicted the caches (``docs/benchmarks.md``);
    anything else (strided, big-endian, empty, a dtype with no buffer format) takes them."""
    if _LITTLE and array.dtype.byteorder != ">":
        try:
            return memoryview(array).cast("B")  # type: ignore[arg-type]  # numpy: no Buffer stub
        except (TypeError, ValueError):  # not C-contiguous, no elements, or e.g. datetime
            pass
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.byteorder == ">" or (flat.dtype.byteorder == "=" and not _LITTLE):
        flat = flat.astype(flat.dtype.newbyteorder("<"))  # pragma: no cover
    return flat.view(np.uint8).data


def encode_tensor(name: str, datatype: str, array: np.ndarray) -> tuple[dict[str, Any], Any]:
    """(response ``outputs`` entry, buffer holding the tensor's binary data)."""
    data: Any = serialize_bytes(array) if datatype == "BYTES" else tensor_data(array)
    entry = {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "parameters": {BINARY_SIZE: len(data)},
    }
    return entry, data
