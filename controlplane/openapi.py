"""The OpenAPI description says what the server does (issue 16.4).

FastAPI's generated description is adjusted once, when first asked for:

- **errors**: every error answer is ``{"detail": "<one line>"}`` (``controlplane.app``'s
  handlers), 422 included, so FastAPI's ``HTTPValidationError`` (a list of error objects)
  is replaced by that ``Error`` schema, and every documented error status gets it;
- **authentication**: an operation that needs a token (``controlplane.auth.policy``) says
  so (a bearer security requirement) and documents 401 and 403;
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from controlplane.auth.policy import required_role

ERROR = "Error"
ERROR_SCHEMA = {
    "title": ERROR,
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "what is wrong, in one line"}},
}
BEARER = "bearerToken"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the adjusted description (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = adjust(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def adjust(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas[ERROR] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token, efk_... (edgectl tokens create)",
    }
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                _operation(path, method, operation)
    return schema


def _operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if required_role(method, path) is not None and behind_token(path):
        operation["security"] = [{BEARER: []}]
        responses.setdefault("401", {"description": "no token, or not a valid one"})
        responses.setdefault("403", {"description": "the token's role may not do this"})
    for status, answer in responses.items():
        if status.isdigit() and int(status) >= 400:
            answer["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}
            }
            if int(status) == 422:
                answer["description"] = "malformed request (failed validation)"


def behind_token(path: str) -> bool:
    """Paths behind the API's token check: ``/api/v1/...`` and ``/metrics``."""
    return path.startswith("/api/") or path == "/metrics"


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the description documents for ``path`` (the ``Allow`` of a 405)."""
    patterns = getattr(app.state, "allow_patterns", None)
    if patterns is None:
        patterns = app.state.allow_patterns = _path_patterns(app.openapi())
    for pattern, methods in patterns:
        if pattern.fullmatch(path):
            return methods
    return []


def _path_patterns(schema: dict[str, Any]) -> list[tuple[re.Pattern[str], list[str]]]:
    """Each documented path as a regex and its methods; literal paths before templated
    ones (``/devices/enrollment`` before ``/devices/{device_id}``), as the router does."""
    found = []
    for template, item in sorted(schema.get("paths", {}).items(), key=lambda t: t[0].count("{")):
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        methods = sorted(m.upper() for m in item if m in _METHODS)
        found.append((re.compile(regex), methods))
    return found


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (by alias) with its ``$defs`` written in place: a schema
    that stands on its own inside the OpenAPI document."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
