"""Retry scheduling of the deployment worker: the backoff and the inbox's retry timer."""

from __future__ import annotations

import threading
import time

import pytest

from agent.deployment import Backoff, Inbox
from protocol import DesiredState


def _desired(generation: int) -> DesiredState:
    return DesiredState(device_id="d1", generation=generation, models=[])


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(2, 60)
    assert [backoff.next() for _ in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next() == 2
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(5, 1)


def test_retry_is_handed_out_after_its_delay() -> None:
    inbox = Inbox("t", retry_initial_s=0.2, retry_max_s=1.0)
    d1 = _desired(1)
    assert inbox.retry_later(d1) == 0.2
    started = time.monotonic()
    assert inbox.next() is d1
    assert time.monotonic() - started >= 0.19
    assert inbox.retry_later(d1) == 0.4  # same generation: the delay doubles
    assert inbox.retry_later(_desired(2)) == 0.2  # a new generation starts again


def test_pending_desired_state_comes_before_the_retry() -> None:
    inbox = Inbox("t", retry_initial_s=30, retry_max_s=60)
    inbox.retry_later(_desired(1))
    d2 = _desired(2)
    inbox.submit(d2)
    assert inbox.next() is d2  # no 30 s wait: the newer generation goes first


def test_cancelled_retry_is_not_handed_out_and_stop_wakes_the_worker() -> None:
    inbox = Inbox("t", retry_initial_s=0.05, retry_max_s=0.05)
    inbox.retry_later(_desired(1))
    inbox.cancel_retry()
    got: list[DesiredState | None] = []
    worker = threading.Thread(target=lambda: got.append(inbox.next()))
    worker.start()
    time.sleep(0.2)
    assert got == []  # still waiting: nothing pending, no retry armed
    inbox.stop()
    worker.join(5)
    assert got == [None]
