"""Issue 13 in edgectl's views: the device deadline, an adjusted strategy, retrying and
skipped devices in the live view; a pin's answers and how ``pin set`` waits for them."""

from __future__ import annotations

from typing import Any

import pytest

from edgectl.errors import PinNotHonoured, WatchTimeout
from edgectl.live import render_rollout, totals
from edgectl.pin_cmds import answer_line, verdict, wait_for_answers


def _rollout(**extra: Any) -> dict[str, Any]:
    counts = {"pending": 1, "updating": 1, "retrying": 2, "activated": 1, "skipped": 0}
    return {
        "id": 3,
        "model": "det",
        "version": "1.2.0",
        "fleet": "f",
        "selector": {},
        "strategy": {"canary": 2, "batches": 3, "install_timeout_s": 600.0},
        "state": "running",
        "reason": None,
        "current_batch": 0,
        "counts": counts | {"total": 5},
        "batches": [{"index": 0, "size": 5, "state": "running", "counts": counts}],
        "notes": ["strategy adjusted: 3 batches asked, no device left after the canary: none run"],
        "history": [],
    } | extra


def test_the_live_view_shows_the_deadline_notes_and_retrying_devices() -> None:
    lines = render_rollout(_rollout())
    assert lines[1] == (
        "note: strategy adjusted: 3 batches asked, no device left after the canary: none run"
    )
    assert "each device: 10m to activate after its batch starts" in lines
    assert totals(_rollout()) == "5 devices: 1 active, 0 failed, 4 pending (1 updating, 2 retrying)"
    aborted = _rollout(state="aborted", counts={"activated": 1, "skipped": 4, "total": 5})
    assert totals(aborted) == "5 devices: 1 active, 0 failed, 0 pending (4 skipped)"
    assert not any(line.startswith("each device") for line in render_rollout(aborted))


def _device(device_id: str, state: str | None, *, online: bool = True) -> dict[str, Any]:
    pin = {"backend": "openvino:CPU:bf16", "source": "fleet", "state": state, "reason": None}
    if state == "not honoured":
        pin["reason"] = "pinned backend openvino:CPU:bf16 is not available here"
    return {"id": device_id, "online": online, "pin": pin}


def test_pin_set_waits_for_online_devices_only() -> None:
    polls = [
        [_device("a", "waiting"), _device("b", "waiting"), _device("c", "waiting", online=False)],
        [_device("a", "honoured"), _device("b", "waiting"), _device("c", "waiting", online=False)],
        [
            _device("a", "honoured"),
            _device("b", "not honoured"),
            _device("c", "waiting", online=False),
        ],
    ]
    sleeps: list[float] = []
    answers = wait_for_answers(
        lambda: polls.pop(0), ["a", "b", "c"], timeout=60, clock=lambda: 0.0, sleep=sleeps.append
    )
    assert len(sleeps) == 2 and not polls
    assert [answer_line(d) for d in answers.values()] == [
        "a: honoured",
        "b: not honoured: pinned backend openvino:CPU:bf16 is not available here",
        "c: offline, it gets the pin when it reconnects",
    ]
    with pytest.raises(PinNotHonoured, match=r"^1 of 3 devices cannot honour the pin .*: b$"):
        verdict(answers, "openvino:CPU:bf16", 60)


def test_pin_set_gives_up_waiting_at_its_timeout() -> None:
    times = iter([0.0, 0.5, 31.0])
    answers = wait_for_answers(
        lambda: [_device("a", "waiting")],
        ["a"],
        timeout=30,
        clock=lambda: next(times),
        sleep=lambda _: None,
    )
    with pytest.raises(WatchTimeout, match="1 online device"):
        verdict(answers, "openvino:CPU:bf16", 30)
    verdict({"a": _device("a", "honoured")}, "openvino:CPU:bf16", 30)  # nothing to say
