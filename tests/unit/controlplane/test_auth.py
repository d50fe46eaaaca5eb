"""Pure parts of API auth: tokens, hashing, roles and which role each request needs."""

from __future__ import annotations

import hashlib

import pytest

from controlplane.auth import Role, display_prefix, hash_token, new_token, required_role
from controlplane.auth.tokens import token_problem


def test_new_tokens_are_random_prefixed_and_hashed_with_sha256() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert token.startswith("efk_") and len(token) == 4 + 43
        assert token_problem(token) is None
        assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
        assert display_prefix(token) == token[:12]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short", "too short"),
        ("x" * 300, "too long"),
        ("efk_has spaces in it 123", "may contain only"),
        ("efk_new\nline-0123456789", "may contain only"),
    ],
)
def test_unusable_tokens_are_refused_in_one_line(token: str, problem: str) -> None:
    found = token_problem(token)
    assert found is not None and problem in found and "\n" not in found


def test_roles_are_ordered_admin_operator_viewer() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.ADMIN.allows(Role.VIEWER)
    assert Role.OPERATOR.allows(Role.VIEWER) and not Role.OPERATOR.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert all(role.allows(role) for role in Role)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        # devices: content-addressed blobs and root-signed trust documents, no token
        ("GET", "/api/v1/blobs/sha256/" + "a" * 64, None),
        ("HEAD", "/api/v1/blobs/sha256/" + "a" * 64, None),
        ("GET", "/api/v1/trust", None),
        ("GET", "/api/v1/trust/3", None),
        # ... but writing them needs an operator
        ("PUT", "/api/v1/blobs/sha256/" + "a" * 64, Role.OPERATOR),
        ("POST", "/api/v1/trust", Role.OPERATOR),
        # not a prefix match on the name: /api/v1/trustee is not /api/v1/trust
        ("GET", "/api/v1/trustee", Role.VIEWER),
        ("GET", "/api/v1/blobsx", Role.VIEWER),
        # reads: viewer; writes: operator, whatever the route
        ("GET", "/api/v1/devices", Role.VIEWER),
        ("head", "/api/v1/rollouts/1", Role.VIEWER),
        ("POST", "/api/v1/rollouts", Role.OPERATOR),
        ("PATCH", "/api/v1/devices/d1/labels", Role.OPERATOR),
        ("DELETE", "/api/v1/anything", Role.OPERATOR),
        ("OPTIONS", "/api/v1/devices", Role.OPERATOR),
        # tokens: admin, reads too
        ("GET", "/api/v1/tokens", Role.ADMIN),
        ("POST", "/api/v1/tokens", Role.ADMIN),
        ("DELETE", "/api/v1/tokens/4", Role.ADMIN),
        ("GET", "/api/v1/tokensx", Role.VIEWER),
        # the audit trail: operator, reads too
        ("GET", "/api/v1/audit", Role.OPERATOR),
        ("GET", "/api/v1/auditx", Role.VIEWER),
        # alerts: operator, reads too (webhook URLs may hold credentials)
        ("GET", "/api/v1/alerts/webhooks", Role.OPERATOR),
        ("GET", "/api/v1/alerts/deliveries", Role.OPERATOR),
        ("POST", "/api/v1/alerts/webhooks", Role.OPERATOR),
        ("GET", "/api/v1/alertsx", Role.VIEWER),
    ],
)
def test_required_role_by_method_and_path(method: str, path: str, needed: Role | None) -> None:
    assert required_role(method, path) == needed
