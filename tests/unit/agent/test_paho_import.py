"""``agent.link.paho_import``: paho loads without dnspython, which stays importable."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(importlib.util.find_spec("dns") is None, reason="dnspython not installed")
def test_the_agent_loads_paho_without_dnspython_and_leaves_it_importable() -> None:
    code = (
        "import sys\n"
        "import agent.link\n"
        "import paho.mqtt.client as mqtt\n"
        "before = 'dns' in sys.modules\n"
        "import dns.resolver\n"
        "print(before, mqtt.HAVE_DNS)\n"
    )
    assert _run(code) == "False False"


@pytest.mark.skipif(importlib.util.find_spec("dns") is None, reason="dnspython not installed")
def test_a_process_that_loaded_dnspython_first_keeps_it_for_paho() -> None:
    code = "import dns.resolver\nimport agent.link\nimport paho.mqtt.client as m\nprint(m.HAVE_DNS)"
    assert _run(code) == "True"
