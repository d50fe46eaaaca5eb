"""The environment of an operator running ``edgectl`` in-process against a test control
plane: the admin token, no config file of the machine's, no ``EDGECTL_URL`` from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.controlplane import ADMIN_TOKEN


def use_operator_env(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """Set the admin token and point ``EDGECTL_CONFIG`` at an absent file in ``workdir``."""
    monkeypatch.setenv("EDGECTL_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("EDGECTL_CONFIG", str(workdir / "no-config.toml"))
    monkeypatch.delenv("EDGECTL_URL", raising=False)
