"""The deployment transition table, the resume rules and the book of the active pointer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.deployment.book import Accepted, Book, Outcome
from agent.deployment.journal import (
    STATE_FILENAME,
    BadBundle,
    PersistedModel,
    load_state,
    save_state,
)
from agent.deployment.lifecycle import (
    ACTIVATION_RESUME,
    FAILURE_EVENT,
    IN_FLIGHT,
    REPORTED_STATUS,
    RESUME,
    TERMINAL,
    TRANSITIONS,
    Event,
    State,
    failure_event,
    give_up,
    is_terminal,
    next_state,
    resume_activation,
    resume_after_restart,
    resume_state,
    start_state,
)
from agent.deployment.loading import settled_status
from agent.errors import IllegalTransition
from protocol import DeviceStatus, EventKind, FileRef, ModelAssignment

HAPPY = [
    State.DOWNLOADING,
    State.VERIFYING,
    State.STAGING,
    State.SELECTING,
    State.WARMING_UP,
    State.SHADOWING,
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


@pytest.mark.parametrize(
    "state", [State.SELECTING, State.WARMING_UP, State.SHADOWING, State.ACTIVATING]
)
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
    assert resume_state(State.SHADOWING) == State.IDLE  # the period starts again
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


# -- restart and giving up: the rows and the resume rules --------------------------------


def test_giving_up_is_a_row_from_every_state_in_flight_to_failed() -> None:
    for state in State:
        if is_terminal(state):
            assert (state, Event.GIVE_UP) not in TRANSITIONS
        else:
            assert next_state(state, Event.GIVE_UP) == State.FAILED
    assert set(IN_FLIGHT) == {s for s in State if not is_terminal(s)}


def test_a_bad_bundle_fails_at_idle_before_anything_runs() -> None:
    assert next_state(State.IDLE, Event.BAD_BUNDLE) == State.FAILED
    assert (State.DOWNLOADING, Event.BAD_BUNDLE) not in TRANSITIONS
    for resume in State:
        assert start_state(resume, bad=True) == State.FAILED
        assert start_state(resume, bad=False) == resume


@pytest.mark.parametrize("state", [s for s in State if not is_terminal(s)])
def test_in_flight_resumes_where_the_table_says_until_the_crash_limit(state: State) -> None:
    for crashes in (0, 1, 2):
        got = resume_after_restart(state, crashes=crashes, max_crashes=3, unfinished=True)
        assert got == RESUME[state]
    for crashes in (3, 4):
        got = resume_after_restart(state, crashes=crashes, max_crashes=3, unfinished=False)
        assert got == State.FAILED  # the give_up row


@pytest.mark.parametrize("state", [State.COMMITTED, State.FAILED])
def test_a_settled_assignment_is_picked_up_only_in_an_unfinished_generation(
    state: State,
) -> None:
    # reported again: its outcome may not have reached the control plane
    assert resume_after_restart(state, crashes=5, max_crashes=3, unfinished=True) == state
    assert resume_after_restart(state, crashes=5, max_crashes=3, unfinished=False) is None


def test_give_up_counts_deaths_against_a_limit_of_at_least_one() -> None:
    assert not give_up(2, 3) and give_up(3, 3) and give_up(4, 3)
    assert give_up(1, 0) and not give_up(0, 0)


def test_an_interrupted_activation_is_decided_by_the_pointer_and_what_serves() -> None:
    assert set(ACTIVATION_RESUME) == {(s, v) for s in (True, False) for v in (True, False)}
    assert resume_activation(switched=True, serves=True) == State.COMMITTED
    # the pointer switched but the new model does not serve (restoring it failed)
    assert resume_activation(switched=True, serves=False) == State.ROLLING_BACK
    # not switched (or switched on another pin): load it again from the cache
    assert resume_activation(switched=False, serves=True) == State.IDLE
    assert resume_activation(switched=False, serves=False) == State.IDLE


def test_every_resume_point_is_a_state_a_run_can_start_from() -> None:
    # a run starts at idle, activating (decided first), rolling_back, or a terminal state
    starts = {State.IDLE, State.ACTIVATING, State.ROLLING_BACK, *TERMINAL}
    assert set(RESUME.values()) <= starts
    assert set(ACTIVATION_RESUME.values()) <= starts - {State.ACTIVATING}


# -- the book: reverting the pointer, and state.json ------------------------------------


def test_revert_points_back_at_the_previous_version_or_at_nothing() -> None:
    book = Book()
    book.switch(_pm("1", "a" * 64))
    book.switch(_pm("2", "b" * 64))
    assert book.revert("det") == _pm("1", "a" * 64)
    assert book.pointer == {"det": _pm("1", "a" * 64)} and book.previous == {}
    assert book.revert("det") is None
    assert book.pointer == {} and book.previous == {}
    assert book.revert("other") is None


def _assignment(digest: str) -> ModelAssignment:
    ref = FileRef(path="model.onnx", sha256=digest, size=10)
    return ModelAssignment(
        deployment_id=1,
        name="det",
        version="2",
        bundle_digest=digest,
        size=10,
        signature=ref,
        files=[ref],
    )


#: a state.json as the agent wrote it before ``Book.to_state`` (schema 3, every key)
OLD_STATE_JSON: dict[str, object] = {
    "schema_version": 3,
    "accepted_generation": 7,
    "accepted_digest": "e" * 64,
    "generation": 6,
    "models": [
        {
            "name": "det",
            "version": "1",
            "bundle_digest": "a" * 64,
            "backend": "onnxruntime",
            "deployment_id": 3,
            "gate_p50_ms": 1.5,
            "pin": None,
        }
    ],
    "previous": [],
    "last_error": "det 0: boom",
    "failed": True,
    "retryable": True,
    "journal_generation": 7,
    "journal": [
        {
            "assignment": _assignment("b" * 64).model_dump(mode="json"),
            "state": "warming_up",
            "crashes": 1,
            "reason": None,
            "transient": False,
        }
    ],
    "bad": [{"bundle_digest": "c" * 64, "generation": 5, "reason": "died"}],
    "stopped_cleanly": True,
    "restoring": {"a" * 64: 1},
}


def test_an_old_state_json_is_read_and_written_back_with_the_same_keys(tmp_path: Path) -> None:
    (tmp_path / STATE_FILENAME).write_text(json.dumps(OLD_STATE_JSON))
    book = Book.from_state(load_state(tmp_path))
    assert book.accepted == Accepted(7, "e" * 64)
    assert book.outcome == Outcome(6, "det 0: boom", failed=True, retryable=True)
    assert book.pointer["det"].gate_p50_ms == 1.5 and book.journal["det"].crashes == 1
    assert book.bad_reason("c" * 64, 5) is not None and book.restoring == {"a" * 64: 1}
    save_state(tmp_path, book.to_state(stopped_cleanly=True))
    assert json.loads((tmp_path / STATE_FILENAME).read_text()) == OLD_STATE_JSON


def test_to_state_saves_a_new_outcome_without_showing_it() -> None:
    book = Book(outcome=Outcome(1))
    new = Outcome(2, "det 2: boom", failed=True, retryable=False)
    state = book.to_state(stopped_cleanly=False, outcome=new)
    assert (state.generation, state.last_error, state.failed) == (2, "det 2: boom", True)
    assert book.outcome == Outcome(1)  # shown only once the caller sets it
    assert Book.from_state(state).outcome == new


def test_take_replaces_the_book_in_place() -> None:
    book = Book()
    other = Book(pointer={"det": _pm("1", "a" * 64)}, accepted=Accepted(3, "f" * 64))
    book.take(other)
    assert book == other


def test_a_failure_the_agent_retries_is_reported_as_retrying_not_failed() -> None:
    assert failure_event(will_retry=True) == EventKind.RETRYING
    assert failure_event(will_retry=False) == EventKind.FAILED
    assert set(FAILURE_EVENT) == {True, False}
