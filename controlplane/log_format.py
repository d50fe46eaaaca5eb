"""Log lines as JSON objects, one per line (``--log-format json``), for a log shipper:
``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``, ``thread``
and, when there is one, ``exception`` (the traceback as one string: JSON escapes its line
breaks, so a record stays one line)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    """The formatter of ``kind`` (one of ``FORMATS``)."""
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)
