"""The audit trail: who (token name and role) wrote what, when, and from where.

Every write request (``POST``/``PUT``/``PATCH``/``DELETE``) under ``/api/v1`` and
``/dashboard`` by a known token is recorded by :class:`~controlplane.audit.recorder.AuditMiddleware`
once its answer is known and before it is sent (``recorder``); what a route is called,
and what it acted on, come from the route table in ``naming`` (pure). Refused writes of
a known token (403, 409, 422, ...) are recorded with their status; anonymous ones (401)
are not, so no one without a token can fill the table; failed dashboard sign-ins are
(address and user agent, never the token). Device writes (``/enroll``, ``/enroll/renew``
and MQTT reports) are exempt: a device's own credential, not an API token, authorizes
them, and ``deviceidentity``/``issuedcertificate`` keep what they did.

Public: :class:`AuditEntry` (the table), :class:`Actor`, :func:`note_caller`,
:func:`actor_of` (in ``context``), :func:`list_entries` (``query``).
"""

from controlplane.audit.context import Actor, actor_of, note_caller
from controlplane.audit.query import AuditPage, list_entries
from controlplane.audit.table import AuditEntry

__all__ = ["Actor", "AuditEntry", "AuditPage", "actor_of", "list_entries", "note_caller"]
