"""A small typed HTTP client for the control plane's ``/api/v1``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from edgectl.errors import ServerError, UnreachableError, UsageError
from protocol import FileRef

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8080"
_CHUNK = 1024 * 1024


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


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


class ControlPlaneClient:
    """Calls the control plane; every failure becomes one clear EdgectlError."""

    def __init__(self, base_url: str = DEFAULT_URL, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        try:
            url = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise UsageError(f"invalid control-plane URL {self.base_url!r}: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"invalid control-plane URL {self.base_url!r}: expected http(s)://host[:port]"
            )
        self._http = httpx.Client(base_url=url, timeout=timeout)

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
                f"{_detail(response)}",
                status_code=response.status_code,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
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

    def upload_blob(self, path: Path, sha256: str) -> None:
        self._request("PUT", f"/api/v1/blobs/sha256/{sha256}", content=_file_chunks(path))

    def create_version(
        self, name: str, version: str, signature: FileRef, files: list[FileRef]
    ) -> dict[str, Any]:
        body = {
            "version": version,
            "signature": signature.model_dump(),
            "files": [f.model_dump() for f in files],
        }
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

    def devices(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/devices"))

    def models(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/models"))

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/devices/{quote(device_id, safe='')}"))

    def set_pin(self, scope: str, name: str, backend: str | None) -> dict[str, Any]:
        """PUT the backend pin of a fleet or device (``scope``: ``fleets``/``devices``)."""
        path = f"/api/v1/{scope}/{quote(name, safe='')}/pin"
        return dict(self._json("PUT", path, json={"backend": backend}))

    def fleet(self, name: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v1/fleets/{quote(name, safe='')}"))
