"""``SessionWatch``: connections lost right after they were made point at another client
using our client id: said at once when the broker says the session was taken over, after
three such losses in a row otherwise (then every 20th); a long session starts the count
again, and a loss with no connection made says nothing."""

from __future__ import annotations

import pytest

from controlplane import mqtt_sessions
from controlplane.mqtt_sessions import SESSION_TAKEN_OVER, SHORT_SESSIONS_WARN, SessionWatch


def _flap(watch: SessionWatch, reason: int = 0) -> str | None:
    watch.connected()
    return watch.lost(reason)


def test_three_short_sessions_in_a_row_point_at_the_client_id() -> None:
    watch = SessionWatch()
    said = [_flap(watch) for _ in range(20)]
    assert [i + 1 for i, s in enumerate(said) if s] == [SHORT_SESSIONS_WARN, 20]
    assert "dropped 3 times in a row within 10s" in str(said[SHORT_SESSIONS_WARN - 1])


def test_a_taken_over_session_is_said_at_once() -> None:
    watch = SessionWatch()
    assert _flap(watch, SESSION_TAKEN_OVER) == "the broker says the session was taken over"
    assert watch.lost(SESSION_TAKEN_OVER) is None  # lost again without connecting: nothing


def test_a_long_session_starts_the_count_again(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = SessionWatch()
    _flap(watch), _flap(watch)
    monkeypatch.setattr(mqtt_sessions, "SHORT_SESSION_S", 0.0)  # the next one counts as long
    assert _flap(watch) is None
    monkeypatch.undo()
    assert [_flap(watch) for _ in range(SHORT_SESSIONS_WARN)][-1] is not None
