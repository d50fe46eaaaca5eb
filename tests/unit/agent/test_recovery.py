"""Recovery after a restart (``agent.deployment.recovery``): crashes counted, giving up
at the limit (bundle marked bad, pointer put back *before* anything loads), resume points."""

from __future__ import annotations

from pathlib import Path

from agent.deployment.book import Book, Outcome
from agent.deployment.journal import (
    AssignmentJournal,
    PersistedModel,
    PersistedState,
)
from agent.deployment.lifecycle import State
from agent.deployment.recovery import Recovery
from agent.errors import AgentError, VerificationError
from agent.serving import LoadedModel, ServedModels
from protocol import FileRef, ModelAssignment
from tests.support.loaded import loaded_model
from tests.support.onnx_models import two_input_model

A, B = "a" * 64, "b" * 64


def _pm(version: str, digest: str) -> PersistedModel:
    return PersistedModel(name="det", version=version, bundle_digest=digest, backend="ort")


def _journal(state: State, crashes: int) -> AssignmentJournal:
    ref = FileRef(path="model.onnx", sha256=B, size=10)
    a = ModelAssignment(
        deployment_id=2,
        name="det",
        version="2",
        bundle_digest=B,
        size=10,
        signature=ref,
        files=[ref],
    )
    return AssignmentJournal(assignment=a, state=state, crashes=crashes)


class _Loads:
    """A fake ``load``: records which versions a start tried to load (and fails them)."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def __call__(self, pm: PersistedModel) -> LoadedModel:
        self.tried.append(pm.version)
        raise AgentError("no runner in this test")


def _recover(state: PersistedState, max_crashes: int = 3) -> tuple[Book, dict[str, State], _Loads]:
    book, loads, saved = Book(), _Loads(), []
    recovery = Recovery(
        label="t",
        book=book,
        models=ServedModels(),
        load=loads,
        persist=lambda: saved.append(book.to_state(stopped_cleanly=False)),
        max_crashes=max_crashes,
    )
    resume = recovery.restore(state)
    assert saved, "recovery persists what it found before loading"
    return book, resume, loads


def test_a_crash_in_flight_is_counted_and_resumed_where_the_table_says() -> None:
    state = PersistedState(
        models=[_pm("1", A)],
        journal_generation=2,
        generation=1,
        journal=[_journal(State.WARMING_UP, crashes=0)],
    )
    book, resume, loads = _recover(state)
    assert resume == {"det": State.IDLE}
    assert book.journal["det"].crashes == 1 and book.bad == {}
    assert loads.tried == ["1"]


def test_a_clean_stop_resumes_without_counting_a_crash() -> None:
    state = PersistedState(
        journal_generation=2,
        generation=1,
        journal=[_journal(State.DOWNLOADING, crashes=1)],
        stopped_cleanly=True,
    )
    book, resume, _ = _recover(state)
    assert resume == {"det": State.IDLE} and book.journal["det"].crashes == 1


def test_at_the_crash_limit_the_agent_gives_up_and_reverts_the_pointer_before_loading() -> None:
    # it died in activating after the switch: the pointer names the new bundle
    state = PersistedState(
        models=[_pm("2", B)],
        previous=[_pm("1", A)],
        journal_generation=2,
        generation=1,
        journal=[_journal(State.ACTIVATING, crashes=2)],
    )
    book, resume, loads = _recover(state)
    assert resume == {"det": State.FAILED}  # the give_up row
    assert "died 3 times while deploying it (last in activating)" in book.bad[B].reason
    assert book.bad[B].generation == 2
    assert book.pointer == {"det": _pm("1", A)} and book.previous == {}
    assert loads.tried == ["1"]  # the version that kept killing it is never loaded


def test_a_committed_version_that_died_loading_at_every_start_is_dropped() -> None:
    state = PersistedState(
        accepted_generation=2,
        generation=2,
        models=[_pm("2", B)],
        previous=[_pm("1", A)],
        restoring={B: 3},
    )
    book, resume, loads = _recover(state)
    assert resume == {} and loads.tried == ["1"]
    assert book.pointer == {"det": _pm("1", A)} and B in book.bad
    # the retained command is to be applied again, and the drop is reported
    assert book.outcome.generation == -1 and book.outcome.failed
    assert "died 3 times in a row while loading it at start; back to 1" in (
        book.outcome.last_error or ""
    )


def test_a_settled_assignment_of_an_unfinished_generation_is_reported_again() -> None:
    state = PersistedState(
        journal_generation=2, generation=1, journal=[_journal(State.COMMITTED, 0)]
    )
    assert _recover(state)[1] == {"det": State.COMMITTED}
    state = PersistedState(
        journal_generation=2, generation=2, journal=[_journal(State.COMMITTED, 0)]
    )
    book, resume, _ = _recover(state)
    assert resume == {} and book.outcome == Outcome(generation=2)


def test_a_committed_version_that_does_not_restore_falls_back_to_the_previous(
    tmp_path: Path,
) -> None:
    served = ServedModels()
    tried: list[str] = []

    def load(pm: PersistedModel) -> LoadedModel:
        tried.append(pm.version)
        if pm.version == "2":
            raise VerificationError("bundle rejected: digest mismatch for model.onnx")
        return loaded_model(tmp_path, two_input_model, "det", pm.version)

    book = Book()
    recovery = Recovery(
        label="t", book=book, models=served, load=load, persist=lambda: None, max_crashes=3
    )
    recovery.restore(PersistedState(models=[_pm("2", B)], previous=[_pm("1", A)], generation=2))
    assert tried == ["2", "1"]
    assert [(m.name, m.version) for m in served.snapshot()] == [("det", "1")]
    # the pointer still names the committed version; the generation is applied again
    assert book.pointer["det"].version == "2" and book.outcome.generation == -1
    why = recovery.fallbacks["det"]
    assert why.startswith("det 2: restore failed: bundle rejected")
    assert why.endswith("serving the previous verified version 1 until 2 is repaired")
    assert book.outcome.last_error == why


def test_no_fallback_when_the_previous_version_does_not_restore_either() -> None:
    book, _, loads = _recover(
        PersistedState(models=[_pm("2", B)], previous=[_pm("1", A)], generation=2)
    )
    assert loads.tried == ["2", "1"]
    assert book.outcome.last_error is not None
    assert "the previous version 1 did not restore either" in book.outcome.last_error
