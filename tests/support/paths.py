"""Where the repository and the test data are, for tests at any depth under ``tests/``."""

from __future__ import annotations

from pathlib import Path

#: the repository root (the working directory a child ``python -c`` needs to import us)
REPO = Path(__file__).resolve().parents[2]
#: ``tests/data``: recorded host facts and other fixed inputs
TEST_DATA = REPO / "tests" / "data"
