"""Webhook signatures, as Stripe signs them: ``X-EdgeFleet-Signature: t=<unix>,v1=<hex>``.

``v1`` is the hex HMAC-SHA256, keyed with the webhook's secret, of ``"<t>.<body>"``
(the raw body bytes). A receiver recomputes it, compares in constant time and refuses a
``t`` too far from its clock (a replayed request). :func:`verify` is that check.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SIGNATURE_HEADER = "X-EdgeFleet-Signature"
EVENT_ID_HEADER = "X-EdgeFleet-Event-Id"
EVENT_TYPE_HEADER = "X-EdgeFleet-Event"
DELIVERY_HEADER = "X-EdgeFleet-Delivery"
#: Secrets the control plane makes: ``whsec_`` and 43 URL-safe characters (256 bits).
SECRET_PREFIX = "whsec_"
#: A receiver's default tolerance for ``t`` (seconds either side of its clock).
TOLERANCE_S = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: int = TOLERANCE_S
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    if re.fullmatch(r"[0-9]{1,12}", stamp) is None:  # ASCII digits only ("²".isdigit())
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        return False
    given = parts.get("v1", "").encode("utf-8", errors="replace")  # bytes: any text compares
    return hmac.compare_digest(given, _mac(secret, timestamp, body).encode())
