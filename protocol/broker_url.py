"""Broker addresses: ``mqtt://[user:pass@]host[:port]`` (``mqtts://`` for TLS).

Shared by the agent and the control plane so both read the same URL the same way, and
so neither ever logs a password (``masked()``, ``mask_url``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from protocol.errors import ProtocolError

_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def masked(self) -> str:
        """The address for logs: never the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = self.username or ""
        auth = f"{user}:***@" if self.password else (f"{user}@" if user else "")
        return f"{scheme}://{auth}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL; ProtocolError (a ValueError, one line, no password) if invalid."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProtocolError(f"invalid broker URL {mask_url(url)!r}: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ProtocolError(
            f"invalid broker URL {mask_url(url)!r}: expected mqtt://[user:pass@]host:port "
            "or mqtts://..."
        )
    return BrokerAddress(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme in ("mqtts", "ssl"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


#: "scheme://" (optional) then user[:password]@: what to hide where no parser finds a netloc
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log); any scheme."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        if "@" in url and not parts.netloc:  # no scheme: "user:secret@host/db" is a path
            return _USERINFO.sub(r"\1***@", url, count=1)
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{port}"
    return urlunsplit(parts._replace(netloc=netloc))
