"""``controlplane.audit.naming`` and ``context``: what a write is called, what is kept."""

from __future__ import annotations

import pytest

from controlplane.audit.context import Actor
from controlplane.audit.naming import describe, fallback, kept_fields, template_of


@pytest.mark.parametrize(
    ("method", "template", "params", "detail", "answer", "expected"),
    [
        ("POST", "/rollouts/{rollout_id}/pause", {"rollout_id": "7"}, {}, {},
         ("rollout.pause", "rollout 7")),
        ("POST", "/rollouts", {}, {"model": "det"}, {"id": 12}, ("rollout.create", "rollout 12")),
        # a refused create made nothing: the target is the kind of thing
        ("POST", "/rollouts", {}, {}, {}, ("rollout.create", "rollout")),
        ("POST", "/models/{name}/versions", {"name": "det"}, {"version": "1.4.0"}, {},
         ("model.register", "model det 1.4.0")),
        ("DELETE", "/tokens/{token_id}", {"token_id": "4"}, {}, {}, ("token.revoke", "token 4")),
        ("POST", "/trust", {}, {}, {"version": 3}, ("trust.publish", "trust v3")),
        ("POST", "/dashboard/rollouts/{rollout_id}/{action}",
         {"rollout_id": "2", "action": "abort"}, {}, {}, ("rollout.abort", "rollout 2")),
        # a route no rule names is still recorded
        ("PUT", "/things/{thing_id}", {"thing_id": "9"}, {}, {}, ("things.put", "things/9")),
    ],
)  # fmt: skip
def test_describe(
    method: str,
    template: str,
    params: dict[str, str],
    detail: dict[str, str],
    answer: dict[str, object],
    expected: tuple[str, str],
) -> None:
    got = describe(method, template, path_params=params, detail=detail, answer=answer)
    assert got == expected


def test_template_leaves_the_api_prefix_out() -> None:
    assert template_of("/api/v1/rollouts/{rollout_id}/pause") == "/rollouts/{rollout_id}/pause"
    assert template_of("/rollouts") == "/rollouts"
    assert template_of("/dashboard/login") == "/dashboard/login"
    assert fallback("DELETE", "/").action == "root.delete"


def test_only_known_fields_are_kept_and_small() -> None:
    body = {
        "name": "ci",
        "role": "operator",
        "token": "efk_secret",
        "signature": {"path": "x", "sha256": "0" * 64},
        "enrollment_token": "s3cret",
        "csr": "-----BEGIN CERTIFICATE REQUEST-----",
        "csrf": "abc",
        "reason": "r" * 1000,
    }
    kept = kept_fields(body)
    assert set(kept) == {"name", "role", "reason"}
    assert len(kept["reason"]) == 300


def test_actor_label_names_the_tool() -> None:
    api = Actor(name="ops", role="operator", source="api", user_agent="python-httpx/0.28")
    assert api.label == "ops (operator) via api"
    cli = Actor(name="ops", role="operator", source="api", user_agent="edgectl/1.2.0")
    assert cli.label == "ops (operator) via edgectl"
    dash = Actor(name="ops", role="admin", source="dashboard", user_agent="edgectl/1.2.0")
    assert dash.label == "ops (admin) via dashboard"
