"""Enrollment for simulated devices: an operator API token asks the control plane for
each device's one-time enrollment token (``POST /api/v1/devices/{id}/enrollment``, what
``edgectl devices enroll`` does); each simulated agent then enrolls as a real one does,
with its own key pair and CSR."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx

from agent.errors import IdentityError

#: How long a simulated device's enrollment token lives (it is used at once).
TOKEN_TTL_S = 600


def api_enrollment(control_plane_url: str, api_token: str, fleet: str) -> Callable[[str], str]:
    """A function: device id -> a fresh one-time enrollment token for it in ``fleet``."""

    def token_for(device_id: str) -> str:
        url = f"{control_plane_url}/api/v1/devices/{quote(device_id, safe='')}/enrollment"
        try:
            resp = httpx.post(
                url,
                json={"fleet": fleet, "ttl_s": TOKEN_TTL_S},
                headers={"Authorization": f"Bearer {api_token}"},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise IdentityError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 201:
            raise IdentityError(
                f"enrollment token for {device_id}: HTTP {resp.status_code}: {resp.text[:200]}"
            )
        token = resp.json().get("token")
        if not isinstance(token, str):
            raise IdentityError(f"enrollment token for {device_id}: no token in the answer")
        return token

    return token_for
