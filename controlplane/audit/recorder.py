"""``AuditMiddleware``: records each write once its answer is known, before it is sent.

For a write (:data:`~controlplane.audit.naming.WRITES`) under ``/api/v1`` or
``/dashboard`` it puts an :class:`~controlplane.audit.context.AuditContext` in the
scope, keeps the first :data:`MAX_BODY` bytes of the request (a JSON object or a form:
only :data:`~controlplane.audit.naming.DETAIL_FIELDS` of it are kept), and holds the
answer back until its end (or :data:`MAX_ANSWER` bytes): then it stores the entry (the
route the router matched, the token the request was authenticated with) and sends the
answer. A failure to store is logged and the answer still sent: the write is done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.audit import naming
from controlplane.audit.context import STATE_KEY, AuditContext, source_of
from controlplane.audit.table import ACTION_LEN, ADDRESS_LEN, TARGET_LEN, UA_LEN, AuditEntry
from controlplane.models import utcnow

logger = logging.getLogger(__name__)

#: Request bytes read for the entry's detail (a longer body is an upload: none kept).
MAX_BODY = 16 * 1024
#: Answer bytes held back to read its ``id``/``version`` (a rollout of a large fleet
#: answers with every device; a longer answer is sent on, its entry without them).
MAX_ANSWER = 1024 * 1024
#: Entries a minute from one address for writes no token is known for (failed sign-ins).
ANONYMOUS_PER_MINUTE = 20


def _path(scope: Scope) -> str:
    """The request path without a proxy's ``root_path``."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path") or ""
    return path[len(root) :] if root and path.startswith(root) else path


def _recorded(scope: Scope) -> bool:
    path = _path(scope)
    return (
        scope["type"] == "http"
        and scope.get("method", "") in naming.WRITES
        and (path.startswith(naming.API_PREFIX + "/") or path.startswith("/dashboard/"))
    )


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        if content_type.startswith("application/json"):
            body = json.loads(raw)
            return naming.kept_fields(body) if isinstance(body, dict) else {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=16)
            return naming.kept_fields({k: v[0] for k, v in fields.items() if len(v) == 1})
    except ValueError:
        return {}
    return {}


class AnonymousLimit:
    """At most :data:`ANONYMOUS_PER_MINUTE` entries a minute from one address for writes
    no token is known for (failed sign-ins): anyone may send those, so they must not fill
    the table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = -1
        self._counts: dict[str, int] = {}

    def allows(self, address: str, now: float) -> bool:
        minute = int(now // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._counts = minute, {}
            count = self._counts.get(address, 0) + 1
            self._counts[address] = count
            return count <= ANONYMOUS_PER_MINUTE


class AuditMiddleware:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: bodies are streamed through)."""

    def __init__(self, app: ASGIApp, *, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self.anonymous = AnonymousLimit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _recorded(scope):
            await self.app(scope, receive, send)
            return
        context = AuditContext(source=source_of(_path(scope)))
        scope.setdefault("state", {})[STATE_KEY] = context
        request_head = bytearray()
        request_whole = True

        async def tee() -> Message:
            nonlocal request_whole
            message = await receive()
            if message["type"] == "http.request" and request_whole:
                request_head.extend(message.get("body", b""))
                if len(request_head) > MAX_BODY:
                    request_whole = False
                    request_head.clear()
            return message

        held: list[Message] = []
        held_bytes = 0
        stored = False
        status = 500

        async def store(answer: bytes | None) -> None:
            nonlocal stored
            if stored:
                return
            stored = True
            body = _parse_body(bytes(request_head), _header(scope, "content-type"))
            await anyio.to_thread.run_sync(
                self._store, scope, context, status, body if request_whole else {}, answer
            )

        async def hold(message: Message) -> None:
            nonlocal held_bytes, status
            if stored:
                await send(message)
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
            held.append(message)
            if message["type"] == "http.response.body":
                held_bytes += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if done or held_bytes > MAX_ANSWER:
                    answer = b"".join(m.get("body", b"") for m in held[1:]) if done else None
                    await store(answer)
                    for pending in held:
                        await send(pending)
                    held.clear()

        try:
            await self.app(scope, tee, hold)
        except Exception:
            if not stored:  # an unhandled error: answered 500 by the outer middleware
                status = 500
                await store(None)
            raise
        if not stored and held:  # the app ended without finishing its answer
            await store(None)
            for pending in held:
                await send(pending)

    def _store(
        self,
        scope: Scope,
        context: AuditContext,
        status: int,
        body: dict[str, Any],
        answer: bytes | None,
    ) -> None:
        route = scope.get("route")
        path_format = getattr(route, "path_format", None)
        if not isinstance(path_format, str):
            return  # no route matched: nothing was written
        method = scope["method"]
        template = naming.template_of(path_format)
        if (method, template) in naming.EXEMPT:
            return
        if context.token_name is None and (method, template) not in naming.WITHOUT_TOKEN:
            return  # no token identified (401, a signed-out form): nothing to attribute
        client = scope.get("client")
        if context.token_name is None and not self.anonymous.allows(
            str(client[0]) if client else "", time.monotonic()
        ):
            return  # a flood of failed sign-ins from one address: the first ones say it
        try:
            parsed = json.loads(answer) if answer else None
        except ValueError:
            parsed = None
        detail = {**body, **context.detail}
        action, target = naming.describe(
            method,
            template,
            path_params=scope.get("path_params") or {},
            detail=detail,
            answer=naming.answer_fields(parsed),
        )
        entry = AuditEntry(
            at=utcnow(),
            token_name=context.token_name,
            role=context.role,
            source=context.source,
            client_address=str(client[0])[:ADDRESS_LEN] if client else None,
            user_agent=_header(scope, "user-agent")[:UA_LEN] or None,
            action=action[:ACTION_LEN],
            target=target[:TARGET_LEN],
            status=status,
            detail=detail,
        )
        try:
            with Session(self.engine) as session:
                session.add(entry)
                session.commit()
        except SQLAlchemyError as exc:
            logger.error(
                "audit: cannot record %s %s (%s): %s", action, target, status, type(exc).__name__
            )


def _header(scope: Scope, name: str) -> str:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers") or ():
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return ""
