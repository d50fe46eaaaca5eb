"""Strict JSON for every parser of the model store: duplicate keys refused, typed field reads.

Signed documents are parsed strictly so that two parsers can never read one document two
ways: a key given twice is an error (Python's ``json`` would keep the last one silently).
Each parser words its own errors; a :class:`StrictJson` holds that wording (templates in
which ``{exc}``, ``{key}``, ``{where}`` and ``{kind}`` are replaced literally) and the
:class:`~model_store.errors.ModelStoreError` subclass it raises::

    SIG = StrictJson(
        SignatureError,
        invalid="malformed signature: not valid JSON ({exc})",
        duplicate="signature has a duplicate key {key}",
        not_object="malformed signature: not a JSON object",
        missing="malformed signature: {where}.{key} is missing",
        wrong_type="malformed signature: {where}.{key} is not a {kind}",
    )
    bundle = SIG.parse_object(data)
    media_type = SIG.req_str(bundle, "mediaType", "bundle")

``{key}`` is the key's ``repr`` (its first ``key_chars`` characters if set). Without a
``duplicate`` template a repeated key is invalid JSON, ``{exc}`` being
``duplicate key 'k'``. In typed reads a ``bool`` is never an ``int``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from model_store.errors import ModelStoreError

__all__ = ["DuplicateKey", "StrictJson", "reject_duplicate_keys"]

T = TypeVar("T")


class DuplicateKey(ValueError):
    """A JSON object names ``key`` twice (a ValueError, as ``json`` errors are)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :func:`json.loads`: DuplicateKey on a repeated key."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def _fill(template: str, **values: str) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


@dataclass(frozen=True)
class StrictJson:
    """One parser's strict JSON reading and the wording of its errors (see the module)."""

    error: type[ModelStoreError]
    invalid: str
    duplicate: str | None = None
    not_object: str | None = None
    missing: str | None = None
    wrong_type: str | None = None
    key_chars: int | None = None

    def fail(self, template: str | None, **values: str) -> ModelStoreError:
        """The error to raise for ``template`` filled with ``values``."""
        assert template is not None, "this parser has no wording for that error"
        return self.error(_fill(template, **values))

    def _key(self, key: str) -> str:
        return repr(key if self.key_chars is None else key[: self.key_chars])

    def parse(self, data: bytes | bytearray | str) -> Any:
        """The JSON value of ``data`` (UTF-8 if bytes); the parser's error if it is not
        valid JSON or repeats a key."""
        try:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            return json.loads(text, object_pairs_hook=reject_duplicate_keys)
        except DuplicateKey as exc:
            if self.duplicate is None:
                raise self.fail(self.invalid, exc=str(exc)) from exc
            raise self.fail(self.duplicate, key=self._key(exc.key)) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise self.fail(self.invalid, exc=str(exc)) from exc

    def parse_object(self, data: bytes | bytearray | str) -> dict[str, Any]:
        """:meth:`parse`, and the value must be a JSON object (``not_object`` if not)."""
        value = self.parse(data)
        if not isinstance(value, dict):
            raise self.fail(self.not_object)
        return value

    def req(self, obj: object, key: str, kind: type[T], where: str) -> T:
        """``obj[key]``, which must be there (``missing``) and a ``kind``
        (``wrong_type``); ``obj`` that is not an object counts as missing the key."""
        if not isinstance(obj, dict) or key not in obj:
            raise self.fail(self.missing, where=where, key=key)
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(self.wrong_type, where=where, key=key, kind=kind.__name__)
        return value

    def req_str(self, obj: object, key: str, where: str) -> str:
        return self.req(obj, key, str, where)

    def req_int(self, obj: object, key: str, where: str) -> int:
        return self.req(obj, key, int, where)

    def req_bool(self, obj: object, key: str, where: str) -> bool:
        return self.req(obj, key, bool, where)

    def req_list(self, obj: object, key: str, where: str) -> list[Any]:
        return self.req(obj, key, list, where)

    def req_dict(self, obj: object, key: str, where: str) -> dict[str, Any]:
        return self.req(obj, key, dict, where)

    def opt(self, obj: dict[str, Any], key: str, kind: type[T], where: str) -> T | None:
        """``obj[key]`` if present and not null, else None; ``wrong_type`` if not a ``kind``."""
        if obj.get(key) is None:
            return None
        return self.req(obj, key, kind, where)

    def opt_str(self, obj: dict[str, Any], key: str, where: str) -> str | None:
        return self.opt(obj, key, str, where)
