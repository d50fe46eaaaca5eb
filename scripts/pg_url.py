"""For scripts/backup.sh and restore.sh: a DATABASE_URL as shell assignments of a libpq
URL without its password (``pg_url``) and the password (``pg_password``), so that the
password reaches pg_dump/pg_restore in ``PGPASSWORD`` and never on a command line."""

from __future__ import annotations

import shlex
import sys
from urllib.parse import unquote, urlsplit, urlunsplit


def split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    scheme = "postgresql"  # postgres://, postgresql+psycopg:// -> libpq's own
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port:
        netloc += f":{parts.port}"
    plain = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return plain, unquote(parts.password or "")


if __name__ == "__main__":
    plain, password = split(sys.argv[1])
    print(f"pg_url={shlex.quote(plain)}; pg_password={shlex.quote(password)}")
