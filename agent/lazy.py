"""Packages that import their parts on first use (PEP 562): a public name costs nothing
until it is used, so a process loads only what it uses (``agent``, ``agent.deployment``,
``agent.simulator``; issue 18: the agent's memory, and its keeper child's start)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name of ``modules`` is imported from
    its module when it is first asked for; any other name is an ``AttributeError``."""

    def attribute(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
