"""Which role a request needs: a pure function of its method and path.

- ``GET``/``HEAD`` of ``/api/v1/blobs/...`` and ``/api/v1/trust[/...]``: no token.
  Devices fetch these without API tokens, and need none: blobs are content-addressed
  and the bundles they make up are signed (a device checks what it fetched against its
  signed deployment command), and trust documents are signed by the offline root keys
  the devices pin. Nothing secret is in either.
- ``POST`` of ``/api/v1/enroll[/renew]`` and ``GET`` of ``/api/v1/device-ca[/crl]``: no
  token. A device enrolls with its one-time enrollment token and renews with a CSR signed
  by the key it enrolled with; the CA certificate and the CRL are public.
- anything under ``/api/v1/tokens``: admin.
- ``/api/v1/audit``: operator (it shows every token's client address and user agent;
  a viewer sees who acted on a rollout in its history).
- anything under ``/api/v1/alerts``, reads included: operator (webhook URLs may carry
  credentials, e.g. a chat service's incoming-webhook URL; delivery errors quote the
  receivers' answers).
- other ``GET``/``HEAD``: viewer.
- every other method: operator.
"""

from __future__ import annotations

from controlplane.auth.tokens import Role

API_PREFIX = "/api/v1"
_READS = frozenset({"GET", "HEAD"})
#: Resources devices read without a token (the resource itself and what lies below it).
PUBLIC_READS = (f"{API_PREFIX}/blobs", f"{API_PREFIX}/trust", f"{API_PREFIX}/device-ca")
#: What devices post without a token (their credential is in the body).
PUBLIC_POSTS = (f"{API_PREFIX}/enroll",)
_ADMIN = f"{API_PREFIX}/tokens"
#: Reads that need an operator, not a viewer.
OPERATOR_READS = (f"{API_PREFIX}/audit", f"{API_PREFIX}/alerts")


def _under(path: str, resource: str) -> bool:
    return path == resource or path.startswith(resource + "/")


def required_role(method: str, path: str) -> Role | None:
    """The least role that may ``method`` ``path`` (as routed), or None: no token."""
    method = method.upper()
    if _under(path, _ADMIN):
        return Role.ADMIN
    if method == "POST" and any(_under(path, resource) for resource in PUBLIC_POSTS):
        return None
    if method in _READS:
        if any(_under(path, resource) for resource in PUBLIC_READS):
            return None
        if any(_under(path, resource) for resource in OPERATOR_READS):
            return Role.OPERATOR
        return Role.VIEWER
    return Role.OPERATOR
