"""The deployment transition table, the resume rules and the book of the active pointer."""

from __future__ import annotations

import pytest

from agent.deployment.book import Book
from agent.deployment.journal import BadBundle, PersistedModel
from agent.deployment.lifecycle import (
    REPORTED_STATUS,
    RESUME,
    TRANSITIONS,
    Event,
    State,
    is_terminal,
    next_state,
    resume_state,
)
from agent.deployment.loading import settled_status
from agent.errors import IllegalTransition
from protocol import DeviceStatus

HAPPY = [
    State.DOWNLOADING,
    State.VERIFYING,
    State.STAGING,
    State.SELECTING,
    State.WARMING_UP,
    State.ACTIVATING,
    State.COMMITTED,
]


def test_happy_path_posts_done_in_every_state() -> None:
    state = next_state(State.IDLE, Event.START)
    walked = [state]
    while not is_terminal(state):
        state = next_state(state, Event.DONE)
        walked.append(state)
    assert walked == HAPPY


def test_a_cached_bundle_skips_the_download_and_an_active_one_commits_at_once() -> None:
    assert next_state(State.IDLE, Event.CACHED) == State.VERIFYING
    assert next_state(State.IDLE, Event.ALREADY_ACTIVE) == State.COMMITTED


@pytest.mark.parametrize("state", [State.IDLE, State.DOWNLOADING, State.VERIFYING, State.STAGING])
def test_failures_up_to_staging_fail_without_rollback(state: State) -> None:
    assert next_state(state, Event.ERROR) == State.FAILED


@pytest.mark.parametrize("state", [State.SELECTING, State.WARMING_UP, State.ACTIVATING])
def test_every_failure_after_staging_goes_through_rolling_back(state: State) -> None:
    assert next_state(state, Event.ERROR) == State.ROLLING_BACK
    assert next_state(State.ROLLING_BACK, Event.DONE) == State.FAILED
    assert next_state(State.ROLLING_BACK, Event.ERROR) == State.FAILED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.IDLE, Event.DONE),
        (State.DOWNLOADING, Event.CACHED),
        (State.COMMITTED, Event.DONE),
        (State.FAILED, Event.START),
        (State.VERIFYING, Event.ALREADY_ACTIVE),
    ],
)
def test_missing_rows_are_illegal(state: State, event: Event) -> None:
    assert (state, event) not in TRANSITIONS
    with pytest.raises(IllegalTransition, match=f"{state} --{event}-->"):
        next_state(state, event)


def test_no_state_but_the_terminal_ones_is_a_dead_end() -> None:
    for state in State:
        has_exit = any(s == state for s, _ in TRANSITIONS)
        assert has_exit != is_terminal(state), state


def test_resume_rules_cover_every_state() -> None:
    assert set(RESUME) == set(State)
    # redone from the start (downloads resume from their partial files)
    for state in (State.DOWNLOADING, State.VERIFYING, State.STAGING, State.SELECTING):
        assert resume_state(state) == State.IDLE
    assert resume_state(State.WARMING_UP) == State.IDLE
    # decided by the persisted pointer, or finished
    assert resume_state(State.ACTIVATING) == State.ACTIVATING
    assert resume_state(State.ROLLING_BACK) == State.ROLLING_BACK


def test_every_state_maps_to_a_reported_status() -> None:
    assert set(REPORTED_STATUS) == set(State)


def test_settled_status_reports_what_serves_now() -> None:
    assert settled_status(serving=True, failed=True) == DeviceStatus.ACTIVE
    assert settled_status(serving=False, failed=True) == DeviceStatus.FAILED
    assert settled_status(serving=False, failed=False) == DeviceStatus.IDLE


def _pm(version: str, digest: str) -> PersistedModel:
    return PersistedModel(name="det", version=version, bundle_digest=digest, backend="ort")


def test_switch_keeps_the_replaced_version_as_previous() -> None:
    book = Book()
    book.switch(_pm("1", "a" * 64))
    assert book.previous == {}
    book.switch(_pm("2", "b" * 64))
    assert book.pointer["det"].version == "2" and book.previous["det"].version == "1"
    book.switch(_pm("2", "b" * 64))  # the same bundle again changes nothing
    assert book.previous["det"].version == "1"
    assert book.keep() == {"a" * 64, "b" * 64}


def test_a_bad_bundle_waits_for_a_newer_generation() -> None:
    book = Book(bad={"c" * 64: BadBundle(bundle_digest="c" * 64, generation=7, reason="boom")})
    assert "generation 7" in (book.bad_reason("c" * 64, 7) or "")
    assert book.bad_reason("c" * 64, 6) is not None
    assert book.bad_reason("c" * 64, 8) is None
    assert book.bad_reason("d" * 64, 7) is None
