"""The simulator's latency knob: rule syntax, which devices and versions a rule hits, and
that the delay lands in the served model's own latency figures (what heartbeats report)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from agent.serving import ServedModels
from agent.simulator.latency import SlowRule, knob_of, parse_slow_rule
from tests.support.loaded import loaded_model
from tests.support.onnx_models import affine_model


def test_parse_full_rule() -> None:
    rule = parse_slow_rule("det:2.0.0=40ms@every-3rd")
    assert rule == SlowRule(model="det", version="2.0.0", ms=40.0, every=3)
    assert [i for i in range(10) if rule.applies(i, "det", "2.0.0")] == [0, 3, 6, 9]
    assert not rule.applies(0, "det", "1.0.0") and not rule.applies(0, "cls", "2.0.0")


@pytest.mark.parametrize(
    ("text", "ms", "version", "hit"),
    [
        ("det=5", 5.0, None, set(range(6))),
        ("det=0.1s@0-1,4", 100.0, None, {0, 1, 4}),
        ("det:1.5.0=2.5ms@all", 2.5, "1.5.0", set(range(6))),
        ("det=1ms@every-2", 1.0, None, {0, 2, 4}),
        ("det=1ms@3", 1.0, None, {3}),
    ],
)
def test_parse_forms(text: str, ms: float, version: str | None, hit: set[int]) -> None:
    rule = parse_slow_rule(text)
    assert (rule.ms, rule.version) == (ms, version)
    assert {i for i in range(6) if rule.applies(i, "det", version or "9.9")} == hit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("det", "expected MODEL[:VERSION]=DURATION[@DEVICES]"),
        ("=40ms", "expected MODEL[:VERSION]=DURATION[@DEVICES]"),
        (":1.0=40ms", "no model name"),
        ("det=fast", "bad duration 'fast'"),
        ("det=-4ms", "bad duration '-4ms'"),
        ("det=4ms@odd", "bad device set 'odd'"),
        ("det=4ms@5-2", "the end is below the start"),
        ("det=4ms@every-0", "every-N needs N >= 1"),
    ],
)
def test_bad_rules_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_slow_rule(text)
    assert "\n" not in str(info.value)


def test_rules_add_up() -> None:
    knob = knob_of([parse_slow_rule("det=10ms"), parse_slow_rule("det:2.0=30ms@1")])
    assert knob(0, "det", "2.0") == 10.0
    assert knob(1, "det", "2.0") == 40.0
    assert knob(1, "det", "1.0") == 10.0
    assert knob(1, "other", "2.0") == 0.0


def test_extra_latency_shows_in_the_served_models_p95(tmp_path: Path) -> None:
    served = ServedModels()
    served.extra_latency = lambda name, version: 0.02 if version == "2.0" else 0.0
    x = {"x": np.ones((1, 4), dtype=np.float32)}
    served.activate(loaded_model(tmp_path / "a", affine_model, "det", "1.0"))
    for _ in range(5):
        with served.use("det") as model:
            model.infer(x)
    served.activate(loaded_model(tmp_path / "b", affine_model, "det", "2.0"))
    for _ in range(5):
        with served.use("det") as model:
            np.testing.assert_array_equal(model.infer(x)["y"], x["x"] * 2 + 1)
    figures = {m.version: m for m in served.metrics.model_metrics()}
    assert figures["2.0"].requests == 5 and figures["2.0"].errors == 0
    p95_new, p95_old = figures["2.0"].p95_ms, figures["1.0"].p95_ms
    assert p95_new is not None and p95_old is not None
    assert p95_new >= 20.0 > p95_old
    served.clear()
