"""``edgectl audit --since``: a duration back from now or an ISO time, else one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edgectl.audit_cmds import since_param
from edgectl.client import user_agent
from edgectl.errors import UsageError

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_since_takes_a_duration_or_a_time() -> None:
    assert since_param("1h", now=NOW) == "2026-12-05T11:00:00+00:00"
    assert since_param("90", now=NOW) == "2026-12-05T11:58:30+00:00"
    assert since_param("2026-12-05T10:00Z") == "2026-12-05T10:00:00+00:00"
    with pytest.raises(UsageError, match=r"^invalid --since 'yesterday': expected"):
        since_param("yesterday")


def test_edgectl_names_itself() -> None:
    assert user_agent().startswith("edgectl/") and " " not in user_agent()
