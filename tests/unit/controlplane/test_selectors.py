"""Label checks and selectors (pure)."""

from __future__ import annotations

import pytest

from controlplane.selectors import (
    check_labels,
    format_selector,
    matches,
    parse_selector,
)


def test_parse_selector() -> None:
    assert parse_selector("hw=xeon-amx,region=eu") == {"hw": "xeon-amx", "region": "eu"}
    assert parse_selector(" hw = x , region=eu ") == {"hw": "x", "region": "eu"}
    assert parse_selector("k=v,k=v") == {"k": "v"}
    assert parse_selector("") == {} and parse_selector(None) == {} and parse_selector("  ") == {}
    assert parse_selector("topology.kubernetes.io/zone=eu-1a") == {
        "topology.kubernetes.io/zone": "eu-1a"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("region", "invalid selector term 'region': expected key=value"),
        ("region=eu,", "invalid selector term '': expected key=value"),
        ("=eu", "invalid label key ''"),
        ("region=", "invalid label value ''"),
        ("re gion=eu", "invalid label key 're gion'"),
        ("k=" + "v" * 64, "invalid label value"),
        ("k=a,k=b", "selector names 'k' twice with different values"),
    ],
)
def test_parse_selector_refuses_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")) as caught:
        parse_selector(text)
    assert "\n" not in str(caught.value)


def test_matches_needs_every_selector_label() -> None:
    labels = {"hw": "xeon-amx", "region": "eu", "site": "12"}
    assert matches(labels, {})
    assert matches(labels, {"region": "eu", "hw": "xeon-amx"})
    assert not matches(labels, {"region": "us"})
    assert not matches(labels, {"rack": "1"})
    assert not matches({}, {"region": "eu"})


def test_format_and_check_labels() -> None:
    assert format_selector({"region": "eu", "hw": "x"}) == "hw=x,region=eu"
    assert format_selector({}) == ""
    assert check_labels({"a": "b"}) == {"a": "b"}
    with pytest.raises(ValueError, match="invalid label key '-a'"):
        check_labels({"-a": "b"})
