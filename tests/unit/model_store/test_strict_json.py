"""The model store's strict JSON helper: duplicate keys refused, typed reads, each
parser's own wording and error type."""

from __future__ import annotations

import json

import pytest

from model_store.errors import BundleError, ModelStoreError, SignatureError, TrustError
from model_store.strict_json import DuplicateKey, StrictJson, reject_duplicate_keys

J = StrictJson(
    SignatureError,
    invalid="bad json ({exc})",
    duplicate="repeated {key}",
    not_object="not an object",
    missing="{where}.{key} is missing",
    wrong_type="{where}.{key} is not a {kind}",
)


def test_hook_refuses_a_repeated_key_at_any_depth() -> None:
    assert json.loads('{"a": {"b": 1}}', object_pairs_hook=reject_duplicate_keys) == {"a": {"b": 1}}
    with pytest.raises(DuplicateKey) as info:
        json.loads('{"a": {"b": 1, "b": 2}}', object_pairs_hook=reject_duplicate_keys)
    assert info.value.key == "b"
    assert str(info.value) == "duplicate key 'b'"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("data", [b'{"a": 1}', bytearray(b'{"a": 1}'), '{"a": 1}'])
def test_parse_object_takes_bytes_bytearray_and_text(data: bytes | bytearray | str) -> None:
    assert J.parse_object(data) == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad json (Expecting value: line 1 column 1 (char 0))"),
        (b"\xff\xfe", "bad json ("),
        (b'{"a": 1', "bad json ("),
        (b'{"a": 1, "a": 2}', "repeated 'a'"),
        (b'[{"x": 1, "x": 1}]', "repeated 'x'"),
        (b"[]", "not an object"),
        (b"3", "not an object"),
    ],
)
def test_parse_object_errors(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError) as info:
        J.parse_object(data)
    assert str(info.value).startswith(message)


def test_parse_allows_any_value() -> None:
    assert J.parse(b"[1, 2]") == [1, 2]
    assert J.parse(b"null") is None


def test_duplicate_without_its_own_wording_is_invalid_json() -> None:
    """As ``edgefleet.json`` words it: "... is not valid JSON: duplicate key 'name'"."""
    meta = StrictJson(BundleError, invalid="m.json is not valid JSON: {exc}")
    with pytest.raises(BundleError, match=r"^m\.json is not valid JSON: duplicate key 'name'$"):
        meta.parse(b'{"name": "a", "name": "b"}')


def test_key_chars_shortens_a_long_key() -> None:
    trust = StrictJson(
        TrustError,
        invalid="x {exc}",
        duplicate="trust document has a duplicate field {key}",
        key_chars=4,
    )
    with pytest.raises(TrustError, match=r"^trust document has a duplicate field 'abcd'$"):
        trust.parse('{"abcdefgh": 1, "abcdefgh": 2}')


def test_error_is_chained_from_the_json_error() -> None:
    with pytest.raises(SignatureError) as info:
        J.parse(b"{")
    assert isinstance(info.value.__cause__, ValueError)


def test_typed_reads() -> None:
    obj = {"s": "x", "i": 3, "b": True, "l": [1], "d": {"k": 1}, "n": None}
    assert J.req_str(obj, "s", "top") == "x"
    assert J.req_int(obj, "i", "top") == 3
    assert J.req_bool(obj, "b", "top") is True
    assert J.req_list(obj, "l", "top") == [1]
    assert J.req_dict(obj, "d", "top") == {"k": 1}
    assert J.opt_str(obj, "s", "top") == "x"
    assert J.opt_str(obj, "n", "top") is None
    assert J.opt_str(obj, "absent", "top") is None


@pytest.mark.parametrize(
    ("obj", "read", "message"),
    [
        ({}, "str", "top.k is missing"),
        ([], "str", "top.k is missing"),  # not an object: as if the key were missing
        (None, "dict", "top.k is missing"),
        ({"k": 1}, "str", "top.k is not a str"),
        ({"k": "1"}, "int", "top.k is not a int"),
        ({"k": True}, "int", "top.k is not a int"),  # a bool is never an int
        ({"k": 1}, "bool", "top.k is not a bool"),
        ({"k": {}}, "list", "top.k is not a list"),
        ({"k": []}, "dict", "top.k is not a dict"),
        ({"k": 1}, "opt_str", "top.k is not a str"),
    ],
)
def test_typed_read_errors(obj: object, read: str, message: str) -> None:
    with pytest.raises(SignatureError) as info:
        if read == "opt_str":
            assert isinstance(obj, dict)
            J.opt_str(obj, "k", "top")
        else:
            getattr(J, f"req_{read}")(obj, "k", "top")
    assert str(info.value) == message


def test_placeholders_are_replaced_literally() -> None:
    """Braces in a value (a file path, a key) are never read as a template."""
    odd = StrictJson(BundleError, invalid="{weird}/m.json: {exc}")
    with pytest.raises(BundleError, match=r"^\{weird\}/m\.json: duplicate key '\{x\}'$"):
        odd.parse('{"{x}": 1, "{x}": 2}')


def test_every_error_is_the_parsers_model_store_error() -> None:
    for bad in (b"{", b'{"a":1,"a":1}', b"[]"):
        with pytest.raises(ModelStoreError):
            J.parse_object(bad)
