"""Selection results cached on disk (``data_dir/selection.json``), so a restart does not
benchmark again.

Keyed by (bundle digest, hardware fingerprint, runtime versions): the same model on the
same hardware with the same ONNX Runtime / OpenVINO versions measures the same; any of the
three changing (a new bundle, a moved disk, an upgraded runtime) measures again. Written
atomically; an unreadable file is ignored (and replaced at the next write). At most
``MAX_ENTRIES`` results are kept, the most recent.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.fsutil import write_atomically
from agent.selection.policy import Measurement

logger = logging.getLogger(__name__)

FILENAME = "selection.json"
MAX_ENTRIES = 64


def cache_key(bundle_digest: str, fingerprint: str, runtimes: dict[str, str]) -> str:
    versions = ",".join(f"{k}={v}" for k, v in sorted(runtimes.items()))
    return f"{bundle_digest}|{fingerprint}|{versions}"


class SelectionCache:
    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / FILENAME
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s: %s", self._path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> tuple[str, list[Measurement]] | None:
        """The cached (chosen key, measurements) for ``key``, or None."""
        with self._lock:
            entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            measurements = [Measurement(**m) for m in entry["measurements"]]
            return str(entry["chosen"]), measurements
        except (KeyError, TypeError) as exc:
            logger.warning("ignoring a malformed selection cache entry: %s", exc)
            return None

    def drop(self, bundle_digest: str) -> int:
        """Forget every result for ``bundle_digest`` (any hardware, any runtimes), so its
        next selection measures again; how many were dropped."""
        with self._lock:
            data = self._read()
            gone = [k for k in data if k.split("|", 1)[0] == bundle_digest]
            for k in gone:
                del data[k]
            if gone:
                try:
                    write_atomically(self._path, json.dumps(data, indent=1).encode("utf-8"))
                except OSError as exc:
                    logger.warning("cannot write %s: %s", self._path, exc)
                    return 0
        return len(gone)

    def put(self, key: str, chosen: str, measurements: list[Measurement]) -> None:
        with self._lock:
            data = self._read()
            data.pop(key, None)
            data[key] = {
                "chosen": chosen,
                "measurements": [asdict(m) for m in measurements],
                "at": datetime.now(UTC).isoformat(),
            }
            while len(data) > MAX_ENTRIES:
                data.pop(next(iter(data)))
            try:
                write_atomically(self._path, json.dumps(data, indent=1).encode("utf-8"))
            except OSError as exc:
                logger.warning("cannot write %s: %s", self._path, exc)
