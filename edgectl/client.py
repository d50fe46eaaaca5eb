"""A small typed HTTP client for the control plane's ``/api/v1``."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from edgectl.errors import ServerError, UnreachableError, UsageError
from protocol import FileRef

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"
_CHUNK = 1024 * 1024
#: RFC 6750 ``b64token``: what a bearer token may contain.
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
#: What to do about a refusal for want of a (good enough) token.
_AUTH_HINTS = {
    401: " (set EDGECTL_TOKEN or --token)",
    403: " (use a token with a higher role: set EDGECTL_TOKEN or --token)",
}


def user_agent() -> str:
    """What edgectl calls itself to the control plane (its audit trail shows it):
    ``edgectl/<version>``."""
    try:
        return f"edgectl/{package_version('edgefleet')}"
    except PackageNotFoundError:
        return "edgectl/0+unknown"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:  # not JSON: an HTML error page from a proxy, say
        return f"{response.reason_phrase} (the answer is not JSON: is --url right?)"
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail:  # FastAPI validation errors
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = f"{where}: {first.get('msg')}" if where else first.get("msg")
    text = str(detail) if detail else (response.text.strip() or response.reason_phrase)
    return " ".join(text.split())


def _params(**values: str | None) -> dict[str, str]:
    """Query parameters, leaving out those not given."""
    return {k: v for k, v in values.items() if v is not None}


def _selector_param(selector: Mapping[str, str] | None) -> str | None:
    return ",".join(f"{k}={v}" for k, v in selector.items()) if selector else None


def _file_chunks(path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk
            if on_bytes is not None:
                on_bytes(len(chunk))


class ControlPlaneClient:
    """Calls the control plane; every failure becomes one clear EdgectlError."""

    def __init__(
        self, base_url: str = DEFAULT_URL, *, token: str | None = None, timeout: float = 30.0
    ) -> None:
        """``token``: the API bearer token sent with every request (never logged)."""
        self.base_url = base_url.rstrip("/")
        try:
            url = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid control-plane URL {self.base_url!r}: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"invalid control-plane URL {self.base_url!r}: expected http(s)://host[:port]"
            )
        if token is not None and not _TOKEN_CHARS.match(token):
            raise UsageError(
                "invalid API token: it may contain only letters, digits and . _ ~ + / = -"
            )
        headers = {"User-Agent": user_agent()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            cause = " ".join(str(exc).split()) or exc.__class__.__name__
            raise UnreachableError(
                f"cannot reach the control plane at {self.base_url}: {cause}"
            ) from exc
        if response.status_code >= 400:
            raise ServerError(
                f"control plane refused {method} {path} ({response.status_code}): "
                f"{_detail(response)}{_AUTH_HINTS.get(response.status_code, '')}",
                status_code=response.status_code,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._decode(self._request(method, path, **kwargs), method, path)

    def _decode(self, response: httpx.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(
                f"{self.base_url} answered {method} {path} with something that is not JSON "
                "(is --url the control plane?)",
                status_code=response.status_code,
            ) from exc

    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/healthz"))

    def upload_blob(
        self, path: Path, sha256: str, *, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        """PUT one blob, streamed; ``on_bytes(n)`` after each chunk is sent (progress)."""
        content = _file_chunks(path, on_bytes)
        self._request("PUT", f"/api/v1/blobs/sha256/{sha256}", content=content)

    def create_version(
        self,
        name: str,
        version: str,
        signature: FileRef,
        files: list[FileRef],
        *,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Register a version; with ``variant``, another bundle of an existing version."""
        body: dict[str, Any] = {
            "version": version,
            "signature": signature.model_dump(),
            "files": [f.model_dump() for f in files],
        }
        if variant is not None:
            body["variant"] = variant
        return dict(self._json("POST", f"/api/v1/models/{name}/versions", json=body))

    def publish_trust(self, raw: bytes) -> dict[str, Any]:
        """POST a signed trust document (its envelope's wire bytes) as the next version."""
        headers = {"content-type": "application/json"}
        body = self._json("POST", "/api/v1/trust", content=raw, headers=headers)
        return dict(body) if isinstance(body, dict) else {}

    def create_deployment(self, model: str, version: str, fleet: str) -> dict[str, Any]:
        body = {"model": model, "version": version, "fleet": fleet}
        return dict(self._json("POST", "/api/v1/deployments", json=body))

    def deployment(self, deployment_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/deployments/{deployment_id}"))

    def devices(
        self, *, fleet: str | None = None, selector: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every device (of ``fleet``, matching ``selector``), following the pages."""
        params = _params(fleet=fleet, selector=_selector_param(selector))
        found: list[dict[str, Any]] = []
        while True:
            response = self._request("GET", "/api/v1/devices", params=params)
            found += list(self._decode(response, "GET", "/api/v1/devices"))
            after = response.headers.get("X-Next-After")
            if not after:
                return found
            params = {**params, "after": after}

    def models(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/models"))

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/devices/{quote(device_id, safe='')}"))

    def set_pin(
        self, scope: str, name: str, backend: str | None, *, model: str | None = None
    ) -> dict[str, Any]:
        """PUT the backend pin of a fleet or device (``scope``: ``fleets``/``devices``),
        for ``model`` only if given."""
        path = f"/api/v1/{scope}/{quote(name, safe='')}/pin"
        body: dict[str, Any] = {"backend": backend}
        if model is not None:
            body["model"] = model
        return dict(self._json("PUT", path, json=body))

    def fleets(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self._json("GET", "/api/v1/fleets")]

    def fleet(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/fleets/{quote(name, safe='')}"))

    def timeline(self, device_id: str, *, kind: str | None, limit: int) -> list[Any]:
        params: dict[str, Any] = {"limit": limit} | ({"kind": kind} if kind else {})
        path = f"/api/v1/devices/{quote(device_id, safe='')}/timeline"
        return list(self._json("GET", path, params=params))

    def cohorts(self, *, window: str, model: str | None, fleet: str | None) -> list[Any]:
        params = {"window": window, "model": model, "fleet": fleet}
        given = {k: v for k, v in params.items() if v}
        return list(self._json("GET", "/api/v1/cohorts", params=given))

    def model(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/models/{quote(name, safe='')}"))

    def label_device(
        self, device_id: str, *, set_: Mapping[str, str], remove: list[str]
    ) -> dict[str, Any]:
        """PATCH a device's labels: set ``set_``, remove the keys in ``remove``."""
        path = f"/api/v1/devices/{quote(device_id, safe='')}/labels"
        body = {"set": dict(set_), "remove": list(remove)}
        return dict(self._json("PATCH", path, json=body))

    def create_enrollment(self, device_id: str, fleet: str, ttl_s: int) -> dict[str, Any]:
        """A one-time enrollment token for ``device_id`` (shown only in this answer)."""
        path = f"/api/v1/devices/{quote(device_id, safe='')}/enrollment"
        return dict(self._json("POST", path, json={"fleet": fleet, "ttl_s": ttl_s}))

    def revoke_device(self, device_id: str) -> dict[str, Any]:
        path = f"/api/v1/devices/{quote(device_id, safe='')}/revoke"
        return dict(self._json("POST", path))

    def reselect_device(self, device_id: str, model: str | None = None) -> dict[str, Any]:
        """Ask a device to measure the backend of ``model`` (None: every model) again."""
        path = f"/api/v1/devices/{quote(device_id, safe='')}/reselect"
        return dict(self._json("POST", path, json={"model": model}))

    # -- rollouts ---------------------------------------------------------------------

    def create_rollout(
        self,
        model: str,
        version: str,
        fleet: str,
        *,
        selector: Mapping[str, str] | None = None,
        strategy: Mapping[str, Any] | None = None,
        priority: str | None = None,
    ) -> dict[str, Any]:
        """Start a rollout; the control plane starts its first batch in the request.
        ``priority``: the model's priority on these devices (None: the bundle's)."""
        body: dict[str, Any] = {"model": model, "version": version, "fleet": fleet}
        if priority:
            body["priority"] = priority
        if selector:
            body["selector"] = dict(selector)
        if strategy:
            body["strategy"] = dict(strategy)
        return dict(self._json("POST", "/api/v1/rollouts", json=body))

    def undeploy(
        self,
        model: str,
        fleet: str,
        *,
        selector: Mapping[str, str] | None = None,
        strategy: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a rollout that removes ``model`` from the fleet's (matching) devices."""
        body: dict[str, Any] = {"model": model, "fleet": fleet, "undeploy": True}
        if selector:
            body["selector"] = dict(selector)
        if strategy:
            body["strategy"] = dict(strategy)
        return dict(self._json("POST", "/api/v1/rollouts", json=body))

    def rollouts(self, *, fleet: str | None = None, state: str | None = None) -> list[Any]:
        params = _params(fleet=fleet, state=state)
        return list(self._json("GET", "/api/v1/rollouts", params=params))

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/rollouts/{rollout_id}"))

    def rollout_action(
        self, rollout_id: int, action: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        """POST ``pause``, ``resume`` or ``abort`` (with an optional reason for history)."""
        body = {"reason": reason} if reason else None
        return dict(self._json("POST", f"/api/v1/rollouts/{rollout_id}/{action}", json=body))

    def rollback(self, rollout_id: int, *, gate: bool = True) -> dict[str, Any]:
        """A new rollout sending each device ``rollout_id`` updated back to its own
        previous version (all at once; gated unless ``gate`` is False)."""
        body = None if gate else {"strategy": {"gate": {"enabled": False}}}
        path = f"/api/v1/rollouts/{rollout_id}/rollback"
        return dict(self._json("POST", path, json=body))

    # -- API tokens (admin) -----------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The name and role of the token this client sends."""
        return dict(self._json("GET", "/api/v1/whoami"))

    def create_token(self, name: str, role: str) -> dict[str, Any]:
        """A new API token; the answer's ``token`` is the only copy."""
        return dict(self._json("POST", "/api/v1/tokens", json={"name": name, "role": role}))

    def tokens(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/tokens"))

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return dict(self._json("DELETE", f"/api/v1/tokens/{token_id}"))

    # -- the audit trail (operator) ---------------------------------------------------

    def audit(
        self,
        *,
        since: str | None = None,
        token: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` recorded writes, newest first, following the pages."""
        params = _params(since=since, token=token, action=action, target=target)
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            page = {**params, "limit": str(min(500, limit - len(found)))}
            response = self._request("GET", "/api/v1/audit", params=page)
            found += list(self._decode(response, "GET", "/api/v1/audit"))
            before = response.headers.get("X-Next-Before")
            if not before:
                break
            params = {**params, "before": before}
        return found[:limit]
