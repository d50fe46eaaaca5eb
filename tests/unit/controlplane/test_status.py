"""The pure rules that move a deployment target: events and re-derivation from state reports."""

from __future__ import annotations

import pytest

from controlplane.models import TargetStatus
from controlplane.status import Change, ReportView, TargetView, after_event, after_report

A = "aa" * 32
B = "bb" * 32
S = TargetStatus


def target(status: TargetStatus = S.PENDING, generation: int = 5, digest: str = A) -> TargetView:
    return TargetView(generation=generation, bundle_digest=digest, status=status)


def report(
    generation: int = 5, active: tuple[str, ...] = (), error: str | None = None
) -> ReportView:
    return ReportView(generation=generation, active_digests=set(active), last_error=error)


@pytest.mark.parametrize("status", [S.PENDING, S.RECEIVED, S.DOWNLOADED, S.VERIFIED, S.FAILED])
def test_running_the_bundle_at_or_past_the_generation_is_activated(status: TargetStatus) -> None:
    for generation in (5, 6, 2**62):
        change = after_report(target(status), report(generation, (B, A)), current=True)
        assert change == Change(S.ACTIVATED, None)
    # superseded targets too: the device does run that bundle
    assert after_report(target(status), report(9, (A,)), current=False) == Change(S.ACTIVATED, None)


def test_an_error_at_the_generation_fails_the_current_target_only() -> None:
    failed = Change(S.FAILED, "det 1.0: signature does not verify")
    assert after_report(target(S.VERIFIED), report(5, (B,), failed.reason), current=True) == failed
    assert after_report(target(), report(7, (), failed.reason), current=True) == failed
    # an older target was superseded: this error is not about it
    assert after_report(target(), report(7, (), failed.reason), current=False) is None


@pytest.mark.parametrize(
    ("before", "seen"),
    [
        (target(), report(4, (A,))),  # the device has not processed generation 5 yet
        (target(), report(4, (), "boom")),
        (target(), report(5, (B,))),  # processed, runs something else, no error: unknown
        (target(S.ACTIVATED), report(5, (A,))),  # nothing new
        (target(S.ACTIVATED), report(5, (B,), "later failure")),  # never backwards
        (target(S.FAILED), report(5, (), "still failing")),  # settled; events carry reasons
    ],
)
def test_reports_that_say_nothing_new(before: TargetView, seen: ReportView) -> None:
    assert after_report(before, seen, current=True) is None


def test_events_move_forward_only_and_the_later_terminal_event_wins() -> None:
    assert after_event(target(S.VERIFIED), S.RECEIVED) is None  # late duplicate
    assert after_event(target(S.VERIFIED), S.VERIFIED) is None
    assert after_event(target(S.RECEIVED), S.VERIFIED) == Change(S.VERIFIED, None)
    assert after_event(target(S.ACTIVATED), S.FAILED, "oom") == Change(S.FAILED, "oom")
    assert after_event(target(S.FAILED), S.ACTIVATED) == Change(S.ACTIVATED, None)
    retry = TargetView(generation=5, bundle_digest=A, status=S.FAILED, reason="timeout")
    assert after_event(retry, S.FAILED, "timeout") is None
    assert after_event(retry, S.FAILED, "refused") == Change(S.FAILED, "refused")
