"""Who made a request: noted by whatever authenticated it, read by the recorder.

:class:`AuditContext` is put in the request's scope (``scope["state"]``) by the
recorder for each write it may record; :func:`note_caller` (called by the API's token
check and the dashboard's session check) fills in the token's name and role. A sync
route runs in a worker thread: the context is an object shared through the scope, not
a context variable, so what the thread notes is seen afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import Scope

#: the key of the context in ``scope["state"]``
STATE_KEY = "edgefleet_audit"
API = "api"
DASHBOARD = "dashboard"
#: what edgectl sends as its User-Agent: ``edgectl/<version>``
EDGECTL_AGENT = "edgectl/"


@dataclass(frozen=True)
class Actor:
    """Who acted: a token (name, role), through what (``api``/``dashboard``), with what
    tool (its User-Agent)."""

    name: str
    role: str
    source: str
    user_agent: str | None = None

    @property
    def via(self) -> str:
        """``edgectl`` for edgectl's requests, else the source (``api``/``dashboard``)."""
        if self.source == API and (self.user_agent or "").startswith(EDGECTL_AGENT):
            return "edgectl"
        return self.source

    @property
    def label(self) -> str:
        """What rollout history says: ``ops (operator) via edgectl``."""
        return f"{self.name} ({self.role}) via {self.via}"


@dataclass
class AuditContext:
    """What the recorder learns about one request while it is handled."""

    source: str
    token_name: str | None = None
    role: str | None = None
    #: what a route adds (e.g. the reason a dashboard form gave)
    detail: dict[str, Any] = field(default_factory=dict)


def source_of(path: str) -> str:
    return DASHBOARD if path.startswith("/dashboard") else API


def context_of(scope: Scope) -> AuditContext | None:
    state = scope.get("state")
    found = state.get(STATE_KEY) if isinstance(state, dict) else None
    return found if isinstance(found, AuditContext) else None


def note_caller(connection: HTTPConnection, name: str, role: str) -> None:
    """Record who made the request (a no-op for requests the recorder does not keep)."""
    context = context_of(connection.scope)
    if context is not None:
        context.token_name, context.role = name, role


def user_agent(connection: HTTPConnection) -> str | None:
    return connection.headers.get("user-agent")


def actor_of(connection: HTTPConnection, name: str, role: str) -> Actor:
    """The actor of a request made with the token ``name`` (``role``)."""
    return Actor(
        name=name,
        role=role,
        source=source_of(connection.scope.get("path", "")),
        user_agent=user_agent(connection),
    )
