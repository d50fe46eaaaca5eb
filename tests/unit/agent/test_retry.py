"""Retry scheduling of the deployment worker: the backoff and the inbox's retry timer."""

from __future__ import annotations

import threading
import time

import pytest

from agent.deployment import Backoff, Inbox, Work, WorkKind
from protocol import EnvelopeSignature, SignedEnvelope


def _command(n: int) -> SignedEnvelope:
    """An (unsigned, never verified here) envelope standing for command ``n``."""
    return SignedEnvelope(
        payloadType="t", payload=f"cGF5{n:04d}", signatures=[EnvelopeSignature(keyid="k", sig="s")]
    )


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
    c1 = _command(1)
    assert inbox.retry_later(c1) == 0.2
    started = time.monotonic()
    work = inbox.next()
    assert work == Work(WorkKind.COMMAND, envelope=c1, retry=True)
    assert time.monotonic() - started >= 0.19
    assert inbox.retry_later(c1) == 0.4  # same command: the delay doubles
    assert inbox.retry_later(_command(2)) == 0.2  # another command starts again


def test_pending_command_comes_before_the_retry_and_trust_before_both() -> None:
    inbox = Inbox("t", retry_initial_s=30, retry_max_s=60)
    inbox.retry_later(_command(1))
    c2 = _command(2)
    inbox.submit_command(_command(3))
    inbox.submit_command(c2)  # the newest arrival wins
    inbox.submit_trust(b"trust")
    assert inbox.next() == Work(WorkKind.TRUST, raw=b"trust")
    assert inbox.next() == Work(WorkKind.COMMAND, envelope=c2)  # no 30 s wait


def test_cancelled_retry_is_not_handed_out_and_stop_wakes_the_worker() -> None:
    inbox = Inbox("t", retry_initial_s=0.05, retry_max_s=0.05)
    inbox.retry_later(_command(1))
    inbox.cancel_retry()
    got: list[Work | None] = []
    worker = threading.Thread(target=lambda: got.append(inbox.next()))
    worker.start()
    time.sleep(0.2)
    assert got == []  # still waiting: nothing pending, no retry armed
    inbox.stop()
    worker.join(5)
    assert got == [None]
