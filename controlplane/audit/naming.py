"""What a write is called and what it acted on, from its route (pure).

:data:`RULES` names every write route of the API and the dashboard by ``(method,
template)``, the template as the router knows it (``/rollouts/{rollout_id}/pause``;
``/api/v1`` left out, ``/dashboard`` kept): its action (``rollout.pause``) and target
(``rollout {rollout_id}``). Fields in braces come from the path, then the request's
kept fields (:data:`DETAIL_FIELDS`), then the answer's ``id`` and ``version``; a
target whose fields are missing (a refused create) is its first word. A write route not
in :data:`RULES` is still recorded, named by :func:`fallback`; :data:`EXEMPT` are the
device writes the trail leaves out (``tests`` check every write route is one or the
other).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_PREFIX = "/api/v1"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Request fields kept in an entry's ``detail``; nothing else of a body is ever stored
#: (no token values, signatures, CSRs, enrollment tokens, trust documents).
DETAIL_FIELDS = frozenset(
    {
        "name", "role", "model", "version", "fleet", "selector", "strategy", "undeploy",
        "priority", "reason", "backend", "set", "remove", "ttl_s", "variant",
    }
)  # fmt: skip
#: Fields of the answer used for targets (never kept otherwise: a new token's answer
#: holds the token).
ANSWER_FIELDS = ("id", "version")
#: Longest text of one detail value kept (longer values are cut).
MAX_VALUE_CHARS = 300


@dataclass(frozen=True)
class Rule:
    action: str
    target: str


RULES: Mapping[tuple[str, str], Rule] = {
    ("PUT", "/blobs/sha256/{digest}"): Rule("blob.upload", "blob sha256:{digest}"),
    ("POST", "/models/{name}/versions"): Rule("model.register", "model {name} {version}"),
    ("POST", "/fleets"): Rule("fleet.create", "fleet {name}"),
    ("PUT", "/fleets/{name}/pin"): Rule("fleet.pin", "fleet {name}"),
    ("POST", "/deployments"): Rule("deployment.create", "deployment {id}"),
    ("PATCH", "/devices/{device_id}/labels"): Rule("device.labels", "device {device_id}"),
    ("PUT", "/devices/{device_id}/pin"): Rule("device.pin", "device {device_id}"),
    ("POST", "/devices/{device_id}/reselect"): Rule("device.reselect", "device {device_id}"),
    ("POST", "/devices/{device_id}/enrollment"): Rule("device.enrollment", "device {device_id}"),
    ("POST", "/devices/{device_id}/revoke"): Rule("device.revoke", "device {device_id}"),
    ("POST", "/rollouts"): Rule("rollout.create", "rollout {id}"),
    ("POST", "/rollouts/{rollout_id}/pause"): Rule("rollout.pause", "rollout {rollout_id}"),
    ("POST", "/rollouts/{rollout_id}/resume"): Rule("rollout.resume", "rollout {rollout_id}"),
    ("POST", "/rollouts/{rollout_id}/abort"): Rule("rollout.abort", "rollout {rollout_id}"),
    ("POST", "/rollouts/{rollout_id}/rollback"): Rule("rollout.rollback", "rollout {rollout_id}"),
    ("POST", "/tokens"): Rule("token.create", "token {id}"),
    ("DELETE", "/tokens/{token_id}"): Rule("token.revoke", "token {token_id}"),
    ("POST", "/trust"): Rule("trust.publish", "trust v{version}"),
    # the webhook's URL is never kept: it may hold a credential
    ("POST", "/alerts/webhooks"): Rule("alert.webhook.create", "webhook {id}"),
    ("DELETE", "/alerts/webhooks/{webhook_id}"): Rule(
        "alert.webhook.remove", "webhook {webhook_id}"
    ),
    ("POST", "/alerts/webhooks/{webhook_id}/test"): Rule(
        "alert.webhook.test", "webhook {webhook_id}"
    ),
    ("POST", "/dashboard/login"): Rule("dashboard.sign-in", "dashboard"),
    ("POST", "/dashboard/logout"): Rule("dashboard.sign-out", "dashboard"),
    ("POST", "/dashboard/rollouts/{rollout_id}/{action}"): Rule(
        "rollout.{action}", "rollout {rollout_id}"
    ),
}

#: Writes left out, and why.
EXEMPT: Mapping[tuple[str, str], str] = {
    ("POST", "/enroll"): "a device enrolls with its one-time enrollment token, not an API "
    "token (the operator's enrollment token request is recorded; deviceidentity keeps "
    "the enrollment)",
    ("POST", "/enroll/renew"): "a device renews with a CSR signed by its own key "
    "(issuedcertificate keeps each certificate)",
}

#: Writes recorded even though no token was identified (a failed sign-in).
WITHOUT_TOKEN = frozenset({("POST", "/dashboard/login")})


def template_of(route_path: str) -> str:
    """A route's path as :data:`RULES` keys it: ``/api/v1`` left out."""
    if route_path == API_PREFIX or route_path.startswith(API_PREFIX + "/"):
        return route_path[len(API_PREFIX) :] or "/"
    return route_path


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def _fill(template: str, fields: Mapping[str, Any]) -> str | None:
    try:
        return template.format_map(_Fields(fields))
    except (KeyError, IndexError, ValueError):
        return None


def fallback(method: str, template: str) -> Rule:
    """The name of a write route no rule names: ``<first segment>.<method>``."""
    words = [w for w in template.split("/") if w and not w.startswith("{")]
    resource = words[0] if words else "root"
    return Rule(f"{resource}.{method.lower()}", template.strip("/") or "/")


def describe(
    method: str,
    template: str,
    *,
    path_params: Mapping[str, Any],
    detail: Mapping[str, Any],
    answer: Mapping[str, Any],
) -> tuple[str, str]:
    """``(action, target)`` of a write to ``template``."""
    rule = RULES.get((method, template)) or fallback(method, template)
    fields = {**answer, **detail, **{k: str(v) for k, v in path_params.items()}}
    action = _fill(rule.action, fields) or rule.action.split(".")[0]
    target = _fill(rule.target, fields) or rule.target.split(" ")[0].split("/")[0]
    return action, target


def _small(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list):
        return [_small(v) for v in value[:20]]
    if isinstance(value, dict):
        return {str(k)[:MAX_VALUE_CHARS]: _small(v) for k, v in list(value.items())[:20]}
    return str(value)[:MAX_VALUE_CHARS]


def kept_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a request body an entry keeps (:data:`DETAIL_FIELDS`), made small."""
    return {k: _small(v) for k, v in body.items() if k in DETAIL_FIELDS}


def answer_fields(body: Any) -> dict[str, Any]:
    """The answer's ``id`` and ``version``, if it is a JSON object holding them."""
    if not isinstance(body, dict):
        return {}
    return {k: body[k] for k in ANSWER_FIELDS if isinstance(body.get(k), int | str) and k in body}
