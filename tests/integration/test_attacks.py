"""The premise of the signing attack suite (issue 3, point 7): v1 serves, alone, unharmed.

What every attack test shares (the serving agent, ``assert_untouched``) is
``tests.support.attacks``; the attacks are ``test_attacks_bundle.py``,
``test_attacks_command.py`` and ``test_attacks_trust.py``."""

from __future__ import annotations

import pytest

from model_store import METADATA_FILENAME
from tests.support.attacks import assert_untouched, module_serving

pytestmark = pytest.mark.integration


def test_attack_suite_baseline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The premise of every attack: v1 serves (HTTP OIP = ONNX Runtime), alone, unharmed."""
    with module_serving(tmp_path_factory, "baseline") as s:
        s.check_start()
        assert_untouched(s)
        assert {f.path for f in s.v1.files} == {METADATA_FILENAME, "model.onnx"}
