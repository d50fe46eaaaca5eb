"""The runtime probe's answer kept on disk, so that a restart starts no probe child.

``runtime_facts.json`` in the agent's data directory holds the last answer of
``hw_profiles.runtimes`` with the key it is valid for: this interpreter, and for each
runtime the path, size and modification time of its package's ``__init__`` (an upgrade,
a removal or an install changes it), and the boot id (``/proc/sys/kernel/random/boot_id``:
a new device or driver is seen after the next reboot; elsewhere the key has no boot id).
A file that is missing, unreadable, malformed or for another key is ignored; writing is
atomic and a failure to write is only logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FILENAME = "runtime_facts.json"
RUNTIME_MODULES = ("onnxruntime", "openvino")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _module_stamp(module: str) -> str:
    try:
        spec = find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if not origin:
        return f"{module}=-"
    try:
        st = os.stat(origin)
    except OSError:
        return f"{module}={origin}:?"
    return f"{module}={origin}:{st.st_size}:{st.st_mtime_ns}"


def cache_key() -> str:
    """What an answer is valid for (see the module docstring), as a sha256 hex digest."""
    try:
        boot = BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        boot = ""
    parts = [sys.executable, sys.version, boot, *(_module_stamp(m) for m in RUNTIME_MODULES)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def read(path: Path, key: str) -> dict[str, Any] | None:
    """The answer kept in ``path`` for ``key``, else None."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.debug("ignoring %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    facts = data.get("facts")
    return facts if isinstance(facts, dict) else None


def write(path: Path, key: str, facts: dict[str, Any]) -> None:
    """Keep ``facts`` for ``key`` in ``path`` (atomically; a failure is only logged)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps({"key": key, "facts": facts}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("cannot keep the runtime facts in %s: %s", path, exc)
