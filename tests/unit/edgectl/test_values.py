"""What edgectl checks before it contacts anything: durations, selectors, label edits,
canary sizes and percentages. Bad input is one UsageError line (exit 2)."""

from __future__ import annotations

import pytest

from edgectl.durations import format_duration, parse_duration
from edgectl.errors import UsageError
from edgectl.values import (
    format_labels,
    parse_canary,
    parse_label_edits,
    parse_percent,
    parse_selector,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("0.5m", 30.0),
        (" 10S ", 10.0),
        ("0", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "5x", "-5s", "30s5m", "5m5m", "1h 30m", "1e3", "s30"])
def test_bad_durations_are_one_line(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text, what="--wait")
    message = str(info.value)
    assert message.startswith(f"invalid --wait {text!r}: expected") and "\n" not in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (45, "45s"), (125, "2m5s"), (5400, "1h30m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_selectors() -> None:
    assert parse_selector("hw=xeon-amx,region=eu") == {"hw": "xeon-amx", "region": "eu"}
    assert parse_selector(" hw = xeon , tier=a.b/c_d ") == {"hw": "xeon", "tier": "a.b/c_d"}
    assert parse_selector("") == {}
    assert format_labels({"region": "eu", "hw": "x"}) == "hw=x,region=eu"
    assert format_labels({}) == "-"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hw", "'hw' is not key=value"),
        ("hw=a,", "'' is not key=value"),
        ("hw=", "invalid label value ''"),
        ("=a", "invalid label key ''"),
        ("hw=a b", "invalid label value 'a b'"),
        ("hw=a,hw=b", "'hw' given twice"),
        ("-x=1", "invalid label key '-x'"),
        ("k=" + "v" * 64, "invalid label value"),
    ],
)
def test_bad_selectors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match="invalid") as info:
        parse_selector(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_label_edits_kubectl_style() -> None:
    edit = parse_label_edits(["region=eu", "tier-", "hw=xeon-amx"])
    assert edit.set == {"region": "eu", "hw": "xeon-amx"}
    assert edit.remove == ["tier"]
    assert edit.body() == {"set": {"region": "eu", "hw": "xeon-amx"}, "remove": ["tier"]}
    for bad, fragment in (
        ([], "no labels given"),
        (["region"], "expected key=value, or key- to remove it"),
        (["region=eu", "region-"], "'region' given twice"),
        (["-"], "invalid label key ''"),
        (["a=b=c"], "invalid label value 'b=c'"),
    ):
        with pytest.raises(UsageError, match=fragment):
            parse_label_edits(bad)


def test_canary_is_devices_or_a_percentage() -> None:
    assert parse_canary("3") == {"canary": 3}
    assert parse_canary("10%") == {"canary_pct": 10.0}
    assert parse_canary("12.5%") == {"canary_pct": 12.5}
    for bad in ("0", "-1", "x", "0%", "101%", "1.5", ""):
        with pytest.raises(UsageError, match="invalid --canary"):
            parse_canary(bad)


def test_percentages() -> None:
    assert parse_percent("20%", what="--max-failures") == 20.0
    assert parse_percent("0", what="--max-failures") == 0.0
    assert parse_percent("250%", what="--gate-latency", maximum=None) == 250.0
    with pytest.raises(UsageError, match=r"expected a percentage from 0 to 100%"):
        parse_percent("120%", what="--max-failures")
    with pytest.raises(UsageError, match=r"of 0% or more"):
        parse_percent("-1", what="--gate-latency", maximum=None)
    with pytest.raises(UsageError, match="invalid --max-failures 'lots'"):
        parse_percent("lots", what="--max-failures")
