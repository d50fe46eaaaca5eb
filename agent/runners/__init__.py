"""Runner plugins: one file per backend, discovered at import, skipped if its SDK is missing.

Public surface:
    Runner, TensorSignature, check_inputs   the plugin interface (``base.py``)
    CandidateSpec                           what a runner is configured for (``spec.py``)
    available_runners()                     key -> Runner class of the plugins that loaded
    skipped_plugins()                       plugin module -> why it did not load
    create_runner(key=None, spec=None)      a fresh, unloaded runner (preferred order)
    create_runner_for(spec)                 a fresh runner of the plugin that supports spec

Plugins (one module each, in ``agent/runners/plugins/``, and nothing else there):
``onnxruntime`` (ORT CPU EP), ``ort_cuda``, ``ort_tensorrt``, ``ort_openvino`` (ORT with
that EP; present only where ORT lists the EP) and ``openvino`` (OpenVINO on any of its
devices). Discovery lists that folder alone, so a helper module beside ``base.py`` is
never taken for a plugin.

Runtimes are loaded lazily: a plugin module does not import its SDK; it imports it when
one of its candidates is first loaded (measured or served), so an idle agent carries no
runtime and a serving one only the runtime it serves with. Discovery asks each plugin's
``unavailable()`` instead (the SDK is installed and its EP / device is there, from the
runtime probe of ``agent.runners.installed``, run once per process in a child process);
a reason skips the plugin, logged in one line, so a missing OpenVINO never breaks ONNX
Runtime. A plugin module may also raise ImportError at import (same: skipped with its
message). Any other exception while importing or asking a plugin (a broken plugin) is
logged as a warning and skips that plugin only.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from types import ModuleType

from agent.errors import RunnerUnavailable
from agent.runners import plugins
from agent.runners.base import Runner, TensorSignature, check_inputs
from agent.runners.spec import CandidateSpec

logger = logging.getLogger(__name__)

#: Backends tried in this order when no key is asked for.
PREFERENCE: tuple[str, ...] = ("onnxruntime",)

_REGISTRY: dict[str, type[Runner]] = {}
_SKIPPED: dict[str, str] = {}
_discovered = False
_lock = threading.Lock()


def register(cls: type[Runner]) -> None:
    """Make ``cls`` available under its ``key`` (discovery calls it for each plugin)."""
    _REGISTRY[cls.key] = cls


def _register_plugin(module: ModuleType) -> None:
    """Register the runner classes a plugin module defines (those with their own ``key``);
    subclasses defined anywhere else (tests) stay private."""
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Runner)
            and value.__module__ == module.__name__
            and "key" in value.__dict__
        ):
            register(value)


def _discover() -> None:
    global _discovered
    with _lock:
        if _discovered:
            return
        for module in pkgutil.iter_modules(plugins.__path__):
            try:
                plugin = importlib.import_module(f"{plugins.__name__}.{module.name}")
                unavailable = getattr(plugin, "unavailable", None)
                reason = unavailable() if callable(unavailable) else None
            except ImportError as exc:  # its SDK or execution provider is missing
                _SKIPPED[module.name] = str(exc)
                logger.info("runner plugin %s skipped: %s", module.name, exc)
            except Exception as exc:  # a broken plugin must not break the others
                _SKIPPED[module.name] = f"{type(exc).__name__}: {exc}"
                logger.warning("runner plugin %s is broken, skipped: %s", module.name, exc)
            else:
                if reason is None:
                    _register_plugin(plugin)
                else:
                    _SKIPPED[module.name] = str(reason)
                    logger.info("runner plugin %s skipped: %s", module.name, reason)
        _discovered = True


def available_runners() -> dict[str, type[Runner]]:
    """Runner classes of every plugin whose SDK imported, by key."""
    _discover()
    return dict(_REGISTRY)


def skipped_plugins() -> dict[str, str]:
    """Plugins that could not load and why."""
    _discover()
    return dict(_SKIPPED)


def create_runner(key: str | None = None, spec: CandidateSpec | None = None) -> Runner:
    """A fresh runner of plugin ``key`` for ``spec`` (default: that plugin's own default
    candidate); without a key, ``create_runner_for(spec)``, or without either the most
    preferred available plugin."""
    runners = available_runners()
    if key is not None:
        if key not in runners:
            raise RunnerUnavailable(f"runner {key!r} is not available (have {sorted(runners)})")
        return runners[key](spec)
    if spec is not None:
        return create_runner_for(spec)
    for candidate in (*PREFERENCE, *sorted(runners)):
        if candidate in runners:
            return runners[candidate]()
    raise RunnerUnavailable("no runner plugin is available")


def create_runner_for(spec: CandidateSpec) -> Runner:
    """A fresh runner for one candidate, of the plugin whose ``supports(spec)`` holds;
    ``RunnerUnavailable`` (one line, with each plugin's reason) when none does."""
    runners = available_runners()
    reasons: list[str] = []
    for key in (*PREFERENCE, *sorted(set(runners) - set(PREFERENCE))):
        cls = runners.get(key)
        if cls is None:
            continue
        reason = cls.unsupported_reason(spec)
        if reason is None:
            return cls(spec)
        reasons.append(f"{key}: {reason}")
    reasons += [f"{name}: not loaded" for name in sorted(skipped_plugins())]
    detail = "; ".join(reasons) or "no runner plugin loaded"
    raise RunnerUnavailable(f"no runner can run {spec.key} ({detail})")


__all__ = [
    "PREFERENCE",
    "CandidateSpec",
    "Runner",
    "TensorSignature",
    "available_runners",
    "check_inputs",
    "create_runner",
    "create_runner_for",
    "register",
    "skipped_plugins",
]
