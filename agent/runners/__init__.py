"""Runner plugins: one file per backend, discovered at import, skipped if its SDK is missing.

Public surface:
    Runner, TensorSignature, check_inputs   the plugin interface (``base.py``)
    available_runners()                     key -> Runner class of the plugins that loaded
    create_runner(key=None)                 a fresh, unloaded runner (preferred order)

A plugin module imports its SDK at the top; if that import fails the registry logs one
line and skips the plugin, so a missing OpenVINO never breaks ONNX Runtime.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from typing import TYPE_CHECKING

from agent.errors import RunnerUnavailable

if TYPE_CHECKING:
    from agent.runners.base import Runner

logger = logging.getLogger(__name__)

#: Backends tried in this order when no key is asked for.
PREFERENCE: tuple[str, ...] = ("onnxruntime",)

_REGISTRY: dict[str, type[Runner]] = {}
_SKIPPED: dict[str, str] = {}
_discovered = False
_lock = threading.Lock()


#: Modules of this package that are not runner plugins.
_NOT_PLUGINS = frozenset({"base", "choice"})


def register(cls: type[Runner]) -> None:
    """Called by ``Runner.__init_subclass__`` for every concrete plugin class."""
    _REGISTRY[cls.key] = cls


def _discover() -> None:
    global _discovered
    with _lock:
        if _discovered:
            return
        for module in pkgutil.iter_modules(__path__):
            if module.name in _NOT_PLUGINS:
                continue
            try:
                importlib.import_module(f"{__name__}.{module.name}")
            except ImportError as exc:
                _SKIPPED[module.name] = str(exc)
                logger.info("runner plugin %s skipped: %s", module.name, exc)
        _discovered = True


def available_runners() -> dict[str, type[Runner]]:
    """Runner classes of every plugin whose SDK imported, by key."""
    _discover()
    return dict(_REGISTRY)


def skipped_plugins() -> dict[str, str]:
    """Plugins that could not load and why."""
    _discover()
    return dict(_SKIPPED)


def create_runner(key: str | None = None) -> Runner:
    """A fresh runner for ``key``, or the most preferred available one."""
    runners = available_runners()
    if key is not None:
        if key not in runners:
            raise RunnerUnavailable(f"runner {key!r} is not available (have {sorted(runners)})")
        return runners[key]()
    for candidate in (*PREFERENCE, *sorted(runners)):
        if candidate in runners:
            return runners[candidate]()
    raise RunnerUnavailable("no runner plugin is available")


from agent.runners.base import Runner, TensorSignature, check_inputs  # noqa: E402

__all__ = [
    "PREFERENCE",
    "Runner",
    "TensorSignature",
    "available_runners",
    "check_inputs",
    "create_runner",
    "register",
    "skipped_plugins",
]
