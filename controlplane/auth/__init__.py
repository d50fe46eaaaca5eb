"""API authentication: bearer tokens with roles (admin > operator > viewer).

Public here (pure): :class:`Role`, :func:`new_token`, :func:`hash_token`,
:func:`required_role`. The FastAPI dependency lives in
:mod:`controlplane.auth.dependency` (``authorize``, ``CallerDep``) and the first-start
admin token in :mod:`controlplane.auth.bootstrap`; database writes in
:mod:`controlplane.crud.tokens`. Only a token's SHA-256 is ever stored or compared.
"""

from controlplane.auth.policy import required_role
from controlplane.auth.tokens import Role, display_prefix, hash_token, new_token

__all__ = ["Role", "display_prefix", "hash_token", "new_token", "required_role"]
