"""``/dashboard``: a read-only web view of fleets, devices and rollouts.

``GET /dashboard`` (``?fleet=``), ``/dashboard/devices/{id}``, ``/dashboard/rollouts/{id}``
need a signed-in token (see :mod:`controlplane.dashboard.session`); without one they
redirect to ``/dashboard/login``. Pages refresh themselves every few seconds.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from controlplane.dashboard import pages, session
from controlplane.dashboard.html import Markup, esc, page
from controlplane.dashboard.style import CSS
from controlplane.deps import RowId, ServicesDep, SessionDep
from controlplane.errors import NotFound
from controlplane.models import utcnow
from controlplane.rollouts.public import list_rollouts, rollout_public
from controlplane.views import devices_public

router = APIRouter(prefix="/dashboard", include_in_schema=False)
#: ``/`` sends a browser to the dashboard.
root_router = APIRouter(include_in_schema=False)

#: Seconds between the automatic refreshes of a page.
REFRESH_S = 5
#: The largest sign-in form accepted (a token is at most 256 characters).
MAX_FORM_BYTES = 4096
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers=_HEADERS)


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=_HEADERS)


def _not_found(message: str, who: str) -> HTMLResponse:
    body = Markup(f'<p class="error">{esc(message)}</p>')
    return _html(page("Not found", body, who=who), 404)


@root_router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/style.css")
def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_page(request: Request, db: SessionDep) -> Response:
    if session.signed_in(request, db) is not None:
        return _to("/dashboard")
    return _html(page("Sign in", pages.login_form()))


def _form_token(body: bytes) -> str | None:
    """The form's one ``token`` field (None: missing, or not a sign-in form at all)."""
    try:
        values = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4).get("token")
    except ValueError:  # more fields than a sign-in form has
        return None
    return values[0].strip() if values and len(values) == 1 else None


@router.post("/login")
async def log_in(request: Request, services: ServicesDep) -> Response:
    if not session.same_origin(request):
        return _html(page("Sign in", pages.login_form("cross-site sign-in refused")), 403)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _html(page("Sign in", pages.login_form("the form is too large")), 413)
    token = _form_token(body)

    def check() -> session.Viewer | None:
        with Session(services.engine) as db:
            return session.check_token(db, token)

    if await run_in_threadpool(check) is None:
        return _html(page("Sign in", pages.login_form("invalid or revoked token")), 401)
    assert token is not None
    response = _to("/dashboard")
    session.remember(response, request, token)
    return response


@router.post("/logout")
def log_out(request: Request) -> Response:
    if not session.same_origin(request):  # another site may not sign a browser out
        return _html(
            page("Sign out", Markup('<p class="error">cross-site sign-out refused</p>')), 403
        )
    response = _to("/dashboard/login")
    session.forget(response)
    return response


@router.get("")
def overview(
    request: Request,
    db: SessionDep,
    fleet: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    devices = devices_public(db, fleet=fleet)
    recent = list_rollouts(db, fleet=fleet, newest=pages.RECENT_ROLLOUTS)
    busy = [r for state in ("running", "paused") for r in list_rollouts(db, state=state)]
    body = pages.overview(devices, recent, busy, fleet=fleet, now=utcnow())
    title = f"Fleet {fleet}" if fleet else "Overview"
    return _html(page(title, body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/devices/{device_id}")
def device(device_id: str, request: Request, db: SessionDep) -> Response:
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    found = devices_public(db, device_id=device_id)
    if not found:
        return _not_found(f"unknown device {device_id!r}", viewer.label)
    body = pages.device_page(found[0], now=utcnow())
    return _html(page(f"Device {device_id}", body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/rollouts/{rollout_id}")
def rollout(rollout_id: RowId, request: Request, db: SessionDep) -> Response:
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    try:
        found = rollout_public(db, rollout_id)
    except NotFound as exc:
        return _not_found(str(exc), viewer.label)
    title = f"Rollout {rollout_id}: {found.model} {found.version}"
    body = pages.rollout_page(found, now=utcnow())
    return _html(page(title, body, who=viewer.label, refresh_s=REFRESH_S))
