"""The external data files an ONNX model refers to, read from its protobuf wire format.

The same answer as ``onnx_io.external_data_files`` (the graph's initializers, sparse
initializers and node attribute tensors, subgraphs included), without importing onnx:
onnx with protobuf costs ~14 MB resident beside onnxruntime, which an agent serving the
model would otherwise keep for its whole life for one check. The file is memory-mapped
and only the field headers on the way to each tensor's ``data_location`` and
``external_data`` are read: weights stored inline are skipped, never paged in.

Only what the walk passes through is checked; a file that is not an ONNX model at all is
the runtime's to refuse.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

from model_store.errors import BundleError
from model_store.paths import check_relative_path

# field numbers of onnx/onnx.proto
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTRIBUTE_T, _ATTRIBUTE_G, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = 5, 6, 10, 11
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
#: ``TensorProto.DataLocation.EXTERNAL``
_EXTERNAL = 1
#: the deepest nesting of subgraphs followed (protobuf's own default recursion limit)
_MAX_DEPTH = 100
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise WireError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of each field: a varint's int, a length-delimited field's
    bytes (a view), 0 for a fixed-size field."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        value: int | memoryview = 0
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _BYTES:
            length, pos = _varint(buf, pos)
            if length > end - pos:
                raise WireError("a field runs past the end of its message")
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            if pos > end:
                raise WireError("a field runs past the end of its message")
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield key >> 3, value


def _messages(buf: memoryview, *numbers: int) -> Iterator[tuple[int, memoryview]]:
    """The length-delimited fields ``numbers`` of a message (a field of another wire type
    under one of these numbers is not a message: skipped, as onnx would fail on it)."""
    for number, value in _fields(buf):
        if number in numbers and isinstance(value, memoryview):
            yield number, value


def _graph_tensors(graph: memoryview, depth: int = 0) -> Iterator[memoryview]:
    if depth > _MAX_DEPTH:
        raise WireError(f"subgraphs nested deeper than {_MAX_DEPTH}")
    for number, value in _messages(
        graph, _GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER
    ):
        if number == _GRAPH_INITIALIZER:
            yield value
        elif number == _GRAPH_SPARSE_INITIALIZER:
            yield from (t for _, t in _messages(value, _SPARSE_VALUES, _SPARSE_INDICES))
        else:
            for _, attribute in _messages(value, _NODE_ATTRIBUTE):
                for kind, item in _messages(
                    attribute, _ATTRIBUTE_T, _ATTRIBUTE_TENSORS, _ATTRIBUTE_G, _ATTRIBUTE_GRAPHS
                ):
                    if kind in (_ATTRIBUTE_T, _ATTRIBUTE_TENSORS):
                        yield item
                    else:
                        yield from _graph_tensors(item, depth + 1)


def _external_location(tensor: memoryview) -> str | None:
    """The ``location`` entry of a tensor stored externally (None: stored inline)."""
    location: str | None = None
    external = False
    for number, value in _fields(tensor):
        if number == _TENSOR_DATA_LOCATION:
            external = value == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and isinstance(value, memoryview):
            entry = dict(_messages(value, _ENTRY_KEY, _ENTRY_VALUE))
            if bytes(entry.get(_ENTRY_KEY, b"")) == b"location":
                try:
                    location = bytes(entry.get(_ENTRY_VALUE, b"")).decode()
                except UnicodeDecodeError:
                    raise WireError("an external data location is not UTF-8") from None
    return location if external else None


def _locations(model: memoryview) -> set[str]:
    found: set[str] = set()
    for _, graph in _messages(model, _MODEL_GRAPH):
        for tensor in _graph_tensors(graph):
            location = _external_location(tensor)
            if location is not None:
                found.add(location)
    return found


def external_data_locations(model_path: Path) -> list[str]:
    """The relative paths of the external data files the model at ``model_path`` refers
    to (sorted, unique). ``BundleError`` for an unsafe path or malformed protobuf,
    ``OSError`` if the file cannot be read."""
    with model_path.open("rb") as fh:
        if model_path.stat().st_size == 0:
            return []
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    problem: str | None = None
    try:
        with memoryview(mapped) as view:
            found = _locations(view)
    except WireError as exc:
        problem = str(exc)
    finally:
        mapped.close()
    if problem is not None:
        raise BundleError(f"not a well-formed ONNX model: {problem}")
    return sorted(check_relative_path(name, what="external data location") for name in found)
