"""OIP JSON bodies with tensor data parsed straight into arrays, and written straight from them.

A JSON inference request for one 224x224 image holds 150 528 numbers (3 MB of text).
Parsing that into Python objects first (a float object per number, then a numpy array
of them) costs more than the model. ``loads_request`` parses the body with simdjson
(pysimdjson) and turns each input's ``data`` into a flat numpy array with one copy of
its C-level values (``Array.as_buffer``): no Python object per number. The rest of the
body (names, shapes, parameters: a few hundred bytes) becomes plain Python objects.

Such an input's ``data`` is a ``JsonNumbers`` (the flat array); ``agent.serving.oip``
checks it exactly as it checks a list (datatype, range, count, shape). Anything the fast
path does not take keeps the old path, so every answer and every error is the same:

- a body simdjson refuses is parsed again with pydantic-core (its one-line error);
- an input whose ``data`` is not all numbers of its datatype's kind (BOOL, BYTES, the
  strings ``"NaN"``/``"Infinity"``, a float in an integer tensor, an integer beyond
  64 bits), or whose nesting is not flat or exactly by ``shape`` (checked row by row, and
  by counting the body's ``[``), keeps its data as Python objects.

``dumps_response`` writes a response with orjson: numeric output arrays straight from
their memory (``OPT_SERIALIZE_NUMPY``), floats in the shortest form that reads back to
the same value of their dtype. ``agent.serving.oip`` hands non-finite float outputs over as
lists holding ``"NaN"``/``"Infinity"``/``"-Infinity"`` (JSON has no such numbers), and
BYTES outputs as lists; anything orjson cannot write goes through pydantic-core.

A body under ``FAST_FROM_BYTES`` (8 KiB: a binary request's JSON header, a small
tensor) is parsed with pydantic-core as before. A simdjson parser serves one request at a time
(it is not thread-safe) and keeps buffers as large as the largest body it parsed, so up
to ``KEEP_PARSERS`` are kept and shared, not one per connection; the arrays are copies,
so nothing refers to a parser once ``loads_request`` returns.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Final, Literal

import numpy as np
import orjson
import pydantic_core
import simdjson

from agent.errors import InvalidInput

#: OIP datatype prefix -> (simdjson buffer type, numpy dtype of that buffer)
_BUFFER_TYPES: Final[dict[str, tuple[Literal["d", "i", "u"], np.dtype[Any]]]] = {
    "FP": ("d", np.dtype(np.float64)),
    "INT": ("i", np.dtype(np.int64)),
    "UINT": ("u", np.dtype(np.uint64)),
}
#: nested data is checked row by row in Python: only when its rows are few (at most this
#: many, or a quarter of its values), else it keeps the Python path
_FEW_ROWS: Final = 256
#: smaller bodies are parsed with pydantic-core: too few numbers to gain from the fast
#: path (its fixed cost, tens of microseconds, is more than they take as Python objects)
FAST_FROM_BYTES: Final = 8192
#: parsers kept for reuse (each keeps buffers as large as the largest body it parsed, so
#: they are few and shared, not one per connection thread)
KEEP_PARSERS: Final = 2
#: ``[`` found one by one in a body before the rest are counted in one pass
_FINDS: Final = 32
_parsers: list[simdjson.Parser] = []
_parsers_lock = threading.Lock()


class JsonNumbers:
    """A request input's JSON ``data``, parsed straight into a flat array (float64,
    int64 or uint64 by the input's datatype), its nesting already checked."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __repr__(self) -> str:
        return f"JsonNumbers({self.values.size} values)"


def _take_parser() -> simdjson.Parser:
    with _parsers_lock:
        if _parsers:
            return _parsers.pop()
    return simdjson.Parser()


def _give_back(parser: simdjson.Parser) -> None:
    with _parsers_lock:
        if len(_parsers) < KEEP_PARSERS:
            _parsers.append(parser)


def _slow(raw: bytes) -> Any:
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc


def _plain(value: Any) -> Any:
    """A simdjson value as plain Python objects."""
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _brackets(value: Any) -> int:
    """How many ``[`` the JSON text of a plain value holds at least (arrays, and in
    strings: an escaped one is not counted, so this may overcount the raw text)."""
    if isinstance(value, list):
        return 1 + sum(_brackets(v) for v in value)
    if isinstance(value, dict):
        return sum(k.count("[") + _brackets(v) for k, v in value.items())
    if isinstance(value, str):
        return value.count("[")
    return 0


def _shape(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(type(d) is int and d >= 0 for d in value):
        return value
    return None


def _rows_match(array: simdjson.Array, shape: list[int]) -> bool:
    """``array`` (a nested list, not flat) holds exactly one level per dimension of
    ``shape``, each of its length; its leaves are checked by the caller."""
    if len(array) != shape[0]:
        return False
    if len(shape) == 1:
        return True
    return all(isinstance(row, simdjson.Array) and _rows_match(row, shape[1:]) for row in array)


def _numbers(data: simdjson.Array, datatype: Any, shape: list[int]) -> tuple[Any, int]:
    """(``JsonNumbers`` or None, the ``[`` its text holds when it is one)."""
    kind = _kind(datatype)
    if kind is None:
        return None, 0
    count = math.prod(shape)
    if len(data) == count:
        nested = False
    elif len(shape) > 1 and count and math.prod(shape[:-1]) <= max(_FEW_ROWS, count // 4):
        nested = True
    else:
        return None, 0
    if nested and not _rows_match(data, shape):
        return None, 0
    of_type, dtype = _BUFFER_TYPES[kind]
    try:
        values = np.frombuffer(data.as_buffer(of_type=of_type), dtype=dtype)
    except (TypeError, ValueError, RuntimeError):  # a value not of that kind
        return None, 0
    if values.size != count:
        return None, 0
    rows = sum(math.prod(shape[:i]) for i in range(len(shape))) if nested else 1
    return JsonNumbers(values), rows


def _kind(datatype: Any) -> str | None:
    """``FP``, ``INT`` or ``UINT`` for a numeric OIP datatype, else None."""
    if not isinstance(datatype, str):
        return None
    for kind in _BUFFER_TYPES:
        if datatype.startswith(kind) and datatype[len(kind) :].isdigit():
            return kind
    return None


class _Fallback(Exception):
    """The body is parsed the old way (a key given twice: the last one wins there)."""


def _fields(obj: simdjson.Object) -> list[tuple[str, Any]]:
    """(key, lazy value) of an object; ``_Fallback`` if a key is given twice."""
    keys = list(obj.keys())
    if len(set(keys)) != len(keys):
        raise _Fallback
    return [(key, obj[key]) for key in keys]


def _input(tensor: simdjson.Object) -> tuple[dict[str, Any], int, int]:
    """(the input as plain objects, ``data`` its numbers when the fast path takes it;
    ``[`` counted in its plain parts, ``[`` its fast data holds)."""
    plain: dict[str, Any] = {}
    data: Any = None
    for key, value in _fields(tensor):
        if key == "data" and isinstance(value, simdjson.Array):
            data = value
        else:
            plain[key] = _plain(value)
    fast_brackets = 0
    shape = _shape(plain.get("shape"))
    if data is not None and shape is not None:
        plain["data"], fast_brackets = _numbers(data, plain.get("datatype"), shape)
    if data is not None and plain.get("data") is None:
        plain["data"] = data.as_list()
    counted = _brackets({k: v for k, v in plain.items() if k != "data" or not fast_brackets})
    return plain, counted, fast_brackets


def loads_request(raw: bytes, *, fast_from: int = FAST_FROM_BYTES) -> Any:
    """An OIP request body as Python objects, each input's numeric ``data`` as
    ``JsonNumbers`` if the body has ``fast_from`` bytes or more; ``InvalidInput`` (one
    line) if it is not JSON."""
    if len(raw) < fast_from or b"\\" in raw:  # escaped text: the [ count could not be trusted
        return _slow(raw)
    parser = _take_parser()
    try:
        body, counted, fast = _loads(parser, raw)
    except _Fallback:
        return _slow(raw)  # not JSON (the same error as before, from the same parser)
    finally:
        _give_back(parser)
    if fast and _count(raw, b"[") != counted + fast:
        return _slow(raw)  # leaves hidden in nested arrays ([[1], 2]): as before
    return body


def _loads(parser: simdjson.Parser, raw: bytes) -> tuple[Any, int, int]:
    """(``_body``) of ``raw`` parsed by ``parser``; nothing refers to the parser after."""
    try:
        try:
            doc = parser.parse(raw)
        except RuntimeError:  # a value of its last document is still referenced somewhere
            doc = simdjson.Parser().parse(raw)
    except ValueError as exc:  # not JSON
        raise _Fallback from exc
    if not isinstance(doc, simdjson.Object):
        return _plain(doc), 0, 0
    return _body(doc)


def _body(doc: simdjson.Object) -> tuple[dict[str, Any], int, int]:
    """(the body as plain objects but for fast data, ``[`` counted in its plain parts,
    ``[`` its fast data holds)."""
    body: dict[str, Any] = {}
    counted = fast = 0
    for key, value in _fields(doc):
        counted += key.count("[")
        if key != "inputs" or not isinstance(value, simdjson.Array):
            body[key] = _plain(value)
            counted += _brackets(body[key])
            continue
        inputs: list[Any] = []
        for item in value:
            if isinstance(item, simdjson.Object):
                plain, seen, brackets = _input(item)
                counted += seen
                fast += brackets
            else:
                plain = _plain(item)
                counted += _brackets(plain)
            inputs.append(plain)
        body[key] = inputs
        counted += 1
    return body, counted, fast


def _count(raw: bytes, char: bytes) -> int:
    """How often the byte ``char`` occurs in ``raw``.

    A request's ``[`` are few (three in a flat one), so they are found one by one with
    ``bytes.find`` (memchr: 0.09 ms over 3 MB, against 0.36 ms for numpy's compare and
    count, 0.87 for ``bytes.count``); past ``_FINDS`` of them the rest is counted by
    numpy in one pass."""
    found, at = 0, raw.find(char)
    while at >= 0:
        found += 1
        if found == _FINDS:
            rest = np.frombuffer(raw, np.uint8, offset=at + 1)
            return found + int(np.count_nonzero(rest == ord(char)))
        at = raw.find(char, at + 1)
    return found


def dumps_response(body: Any) -> bytes:
    """A response body as JSON; numpy arrays are written from their memory."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return pydantic_core.to_json(body, inf_nan_mode="strings", fallback=_tolist)


def _tolist(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
