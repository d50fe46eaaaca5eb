"""``/dashboard``: a web view of fleets, devices and rollouts, and rollout actions.

``GET /dashboard`` (filtered by ``?fleet=``, ``status``, ``version``, ``online``,
``profile``, ``label``, ``q``; a page after ``after``: :mod:`controlplane.dashboard.finder`),
``/dashboard/devices/{id}`` (charts over ``?window=`` and its timeline: ``trend_pages``),
``/dashboard/rollouts/{id}``, ``/dashboard/cohorts`` need a signed-in token (see
:mod:`controlplane.dashboard.session`); without one they redirect to ``/dashboard/login``.
Pages refresh themselves every few seconds.
``POST /dashboard/rollouts/{id}/{pause|resume|abort|rollback}`` (an operator's form, with
its CSRF value) acts through :func:`controlplane.rollouts.actions.perform`.
``/dashboard/audit`` and ``/dashboard/alerts`` (operator or admin) list the audit trail
(``audit_page``) and the alert webhooks with their deliveries (``alerts_page``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from controlplane import cohorts, history, timeline
from controlplane.attention import failed_devices, regressed_devices
from controlplane.audit import actor_of, note_caller
from controlplane.auth.tokens import Role
from controlplane.dashboard import (
    alerts_page,
    attention,
    audit_page,
    finder,
    pages,
    session,
    trend_pages,
)
from controlplane.dashboard.html import Markup, esc, join, link, page, section
from controlplane.dashboard.style import CSS
from controlplane.deps import RowId, ServicesDep, SessionDep, SettingsDep
from controlplane.errors import ControlPlaneError, NotFound
from controlplane.models import utcnow
from controlplane.paging import devices_page, fleet_exists, fleet_summary
from controlplane.rollouts import states
from controlplane.rollouts.actions import Action, perform
from controlplane.rollouts.public import list_rollouts, rollout_public
from controlplane.views import devices_public

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
#: ``/`` sends a browser to the dashboard.
root_router = APIRouter(include_in_schema=False)

#: Seconds between the automatic refreshes of a page.
REFRESH_S = 5
#: Samples a device's charts draw from at most, and timeline entries shown.
CHART_SAMPLES = 20_000
TIMELINE_ENTRIES = 100
Window = Literal["15m", "1h", "6h", "24h", "7d", "30d"]
DEFAULT_WINDOW: Window = "1h"
#: The largest form accepted (a token is at most 256 characters, a reason 500).
MAX_FORM_BYTES = 4096
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: under it browsers send "Origin: null" on same-origin form posts,
    # which the origin check must refuse; same-origin sends nothing to other sites
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code, headers=_HEADERS)


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=_HEADERS)


def _problem(message: str, status_code: int, who: str, back: str | None = None) -> HTMLResponse:
    """One line saying what went wrong (and a link ``back``)."""
    body = Markup(f'<p class="error">{esc(message)}</p>')
    if back is not None:
        body = Markup(f"{body}<p>{link(back, 'back')}</p>")
    title = "Not found" if status_code == 404 else "Not done"
    return _html(page(title, body, who=who), status_code)


def _not_found(message: str, who: str) -> HTMLResponse:
    return _problem(message, 404, who)


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


async def _read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form's fields, each given once (None: over :data:`MAX_FORM_BYTES`).
    A field given twice, or a body that is not such a form, reads as absent."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    except ValueError:  # more fields than a dashboard form has
        return {}
    return {k: v[0].strip() for k, v in fields.items() if len(v) == 1}


@router.post("/login")
async def log_in(request: Request, services: ServicesDep) -> Response:
    if not session.same_origin(request):
        return _html(page("Sign in", pages.login_form("cross-site sign-in refused")), 403)
    form = await _read_form(request)
    if form is None:
        return _html(page("Sign in", pages.login_form("the form is too large")), 413)
    token = form.get("token")

    def check() -> session.Viewer | None:
        with Session(services.engine) as db:
            return session.check_token(db, token)

    viewer = await run_in_threadpool(check)
    if viewer is None:
        return _html(page("Sign in", pages.login_form("invalid or revoked token")), 401)
    assert token is not None
    note_caller(request, viewer.name, viewer.role.value)
    response = _to("/dashboard")
    session.remember(response, request, token)
    return response


@router.post("/logout")
def log_out(request: Request, db: SessionDep) -> Response:
    session.signed_in(request, db)  # who signs out, for the audit trail
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
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """The overview; the query's filters (:mod:`controlplane.dashboard.finder`) narrow
    the devices listed, ``fleet`` the rollouts too."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    try:
        found = finder.read(request.query_params)
    except finder.BadFilter as exc:
        return _problem(str(exc), 400, viewer.label, "/dashboard")
    fleet = found.wanted.fleet
    if fleet is not None and not fleet_exists(db, fleet):
        return _not_found(f"unknown fleet {fleet!r}", viewer.label)
    # a page of devices and the per-fleet counts: never every device row
    devices = devices_page(db, found.wanted, after=after, limit=found.limit)
    summary = fleet_summary(db) if fleet is None else []
    recent = list_rollouts(db, fleet=fleet, newest=pages.RECENT_ROLLOUTS)
    busy = [r for state in states.ACTIVE_STATES for r in list_rollouts(db, state=state)]
    flagged = attention.section(
        busy,
        regressed_devices(db, [r.id for r in busy], limit=attention.SHOWN),
        failed_devices(db, limit=attention.SHOWN),
    )
    now = utcnow()
    body = pages.overview(
        devices, summary, recent, busy, found=found, after=after, now=now, attention=flagged
    )
    title = f"Fleet {fleet}" if fleet else "Overview"
    return _html(page(title, body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/devices/{device_id}")
def device(
    device_id: str, request: Request, db: SessionDep, window: Window = DEFAULT_WINDOW
) -> Response:
    """The device, its charts over ``window`` and its timeline."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    found = devices_public(db, device_id=device_id)
    if not found:
        return _not_found(f"unknown device {device_id!r}", viewer.label)
    now = utcnow()
    since = now - timedelta(seconds=cohorts.WINDOWS[window])
    samples = history.recent(db, device_id, since=since, limit=CHART_SAMPLES)
    href = pages.device_href(device_id)
    charts = join(
        [
            trend_pages.window_links(href, window),
            trend_pages.cut_note(len(samples), CHART_SAMPLES),
            trend_pages.device_charts(samples),
        ]
    )
    entries = timeline.timeline(db, device_id, limit=TIMELINE_ENTRIES)
    body = join(
        [
            pages.device_page(found[0], now=now),
            section("Over time", charts),
            section("Timeline", trend_pages.device_timeline(entries, now)),
        ]
    )
    return _html(page(f"Device {device_id}", body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/cohorts")
def cohort_view(
    request: Request,
    db: SessionDep,
    window: Window = DEFAULT_WINDOW,
    model: Annotated[str | None, Query(max_length=128)] = None,
    fleet: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    """Latency and errors by model version x backend x hardware profile over ``window``."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    found = cohorts.cohorts(
        db, now=utcnow(), window_s=cohorts.WINDOWS[window], model=model, fleet=fleet
    )
    body = trend_pages.cohorts_page(found, window=window, model=model, fleet=fleet)
    return _html(page("Cohorts", body, who=viewer.label, refresh_s=REFRESH_S))


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
    may_act = viewer.role.allows(Role.OPERATOR)
    body = join(
        [
            pages.rollout_page(found, now=utcnow(), may_act=may_act),
            section("Before and after, per batch", trend_pages.rollout_batches(found)),
        ]
    )
    return _html(page(title, body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/audit")
def audit(
    request: Request,
    db: SessionDep,
    filters: Annotated[audit_page.Filters, Query()],
) -> Response:
    """The audit trail (operator or admin, as ``GET /api/v1/audit``)."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    if not viewer.role.allows(Role.OPERATOR):
        return _problem(f"role {viewer.role.value} may not read the audit trail", 403, viewer.label)
    body = audit_page.render(db, filters, now=utcnow())
    return _html(page("Audit trail", body, who=viewer.label))


@router.get("/alerts")
def alerts(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    """Alert webhooks and their newest deliveries (operator or admin, as the API)."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    if not viewer.role.allows(Role.OPERATOR):
        return _problem(f"role {viewer.role.value} may not read the alerts", 403, viewer.label)
    body = alerts_page.render(db, max_attempts=settings.alert_max_attempts, now=utcnow())
    return _html(page("Alerts", body, who=viewer.label, refresh_s=REFRESH_S))


@router.get("/rollouts/{rollout_id}/{action}")
def action_page(rollout_id: RowId, action: Action, request: Request, db: SessionDep) -> Response:
    """The form of one action (no automatic refresh: what is typed stays)."""
    viewer = session.signed_in(request, db)
    if viewer is None:
        return _to("/dashboard/login")
    back = pages.rollout_href(rollout_id)
    if not viewer.role.allows(Role.OPERATOR):
        message = f"role {viewer.role.value} may not {action.value} a rollout"
        return _problem(message, 403, viewer.label, back)
    try:
        found = rollout_public(db, rollout_id)
    except NotFound as exc:
        return _not_found(str(exc), viewer.label)
    if action not in pages.allowed_actions(found):
        message = f"rollout {rollout_id} is {found.state}: it cannot {action.value} now"
        return _problem(message, 409, viewer.label, back)
    title = pages.action_label(found, action)
    return _html(page(title, pages.action_form(found, action, csrf=viewer.csrf), who=viewer.label))


@router.post("/rollouts/{rollout_id}/{action}")
async def act(
    rollout_id: RowId, action: Action, request: Request, services: ServicesDep
) -> Response:
    """Pause, resume, abort or roll back from the rollout's page (operator or admin)."""
    if not session.same_origin(request):
        return _html(page("Not done", Markup('<p class="error">cross-site form refused</p>')), 403)
    form = await _read_form(request)
    back = pages.rollout_href(rollout_id)

    def work() -> Response:
        with Session(services.engine) as db:
            viewer = session.signed_in(request, db)
            if viewer is None:
                return _to("/dashboard/login")
            if form is None:
                return _problem("the form is too large", 413, viewer.label, back)
            if not session.csrf_matches(viewer, form.get("csrf")):
                return _problem("this form is stale: reload the page", 403, viewer.label, back)
            if not viewer.role.allows(Role.OPERATOR):
                message = f"role {viewer.role.value} may not {action.value} a rollout"
                return _problem(message, 403, viewer.label, back)
            if action in (Action.ABORT, Action.ROLLBACK) and form.get("confirm") != "yes":
                return _problem(
                    f"tick the box to confirm the {action.value}", 400, viewer.label, back
                )
            reason = form.get("reason", "")[:500] or None
            by = actor_of(request, viewer.name, viewer.role.value).label
            try:
                shown = perform(
                    db,
                    services.signer,
                    services.publisher,
                    rollout_id=rollout_id,
                    action=action,
                    reason=reason,
                    by=by,
                )
            except ControlPlaneError as exc:
                return _problem(str(exc), exc.status_code, viewer.label, back)
            logger.info("dashboard: %s %s rollout %s", viewer.name, action.value, rollout_id)
            return _to(pages.rollout_href(shown))

    return await run_in_threadpool(work)
