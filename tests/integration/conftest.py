"""Fixtures shared by the agent integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_agent_deploy import Setup, open_setup
from tests.support.mosquitto import Broker


@pytest.fixture
def setup(tmp_path: Path, mosquitto: Broker) -> Iterator[Setup]:
    """A private broker, a blob server serving a trust chain, keys, and agent factories."""
    with open_setup(tmp_path, mosquitto) as env:
        yield env
