"""Import paho without dnspython: the agent never asks paho for a DNS SRV lookup.

paho's client module imports ``dns.resolver`` when dnspython is installed, only for
``Client.connect_srv``, which the agent never calls (it connects to the broker URL it is
configured with). dnspython and what it pulls in (``idna``, ``encodings.idna``,
``unicodedata``: ~60 modules) cost ~2.4 MB of the agent's resident memory for nothing
(measured with ``bench.footprint``'s serving agent; an agent installed from the project's
own dependencies has no dnspython, a development environment has it through
``email-validator``). ``import_paho()`` imports paho's client with ``dns`` hidden, then
puts ``sys.modules`` back as it was, so anything else in the process that imports
dnspython later still gets it. Where paho or dnspython is already loaded it changes
nothing. The package imports this first (``agent.link``), before its modules import paho.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_paho() -> ModuleType:
    """``paho.mqtt.client``, imported (once) with dnspython hidden from it."""
    if "paho.mqtt.client" in sys.modules or "dns" in sys.modules:
        import paho.mqtt.client

        return paho.mqtt.client
    sys.modules["dns"] = None  # type: ignore[assignment]  # `import dns...` raises ImportError
    try:
        import paho.mqtt.client
    finally:
        del sys.modules["dns"]
    return paho.mqtt.client


import_paho()
