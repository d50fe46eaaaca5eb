"""Who is signed in to the dashboard: an API token kept in a cookie.

A browser cannot send ``Authorization: Bearer`` on a page load, so signing in stores
the token (checked first: live, any role) in a cookie that scripts cannot read
(``HttpOnly``), that no other site's request carries (``SameSite=Strict``), that only
``/dashboard`` receives, and that is ``Secure`` behind HTTPS. Every page checks it again,
so a revoked token signs its browser out at the next refresh. Pages only read;
an operator (or admin) token may also pause, resume, abort and roll back rollouts from
their pages, with forms that carry a value derived from the token (:func:`csrf_token`)
and are refused from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response
from sqlmodel import Session

from controlplane.audit.context import note_caller
from controlplane.auth.tokens import MAX_TOKEN_LEN, Role
from controlplane.crud.tokens import find_token, touch_token

COOKIE = "edgefleet_dashboard"
COOKIE_PATH = "/dashboard"


@dataclass(frozen=True)
class Viewer:
    """The signed-in token: its name, role, and the CSRF value its forms carry."""

    name: str
    role: Role
    csrf: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role.value})"


def check_token(session: Session, token: str | None) -> Viewer | None:
    """The live token ``token`` names, if any role may read (every role may)."""
    if not token or len(token) > MAX_TOKEN_LEN:
        return None
    row = find_token(session, token=token)
    if row is None:
        return None
    touch_token(session, row=row)
    role = Role(row.role)
    if not role.allows(Role.VIEWER):  # pragma: no cover - every role reads today
        return None
    return Viewer(name=row.name, role=role, csrf=csrf_token(token))


def csrf_token(token: str) -> str:
    """What the forms of a signed-in page carry: derived from the cookie's token (nothing
    stored), so another site, which cannot read the cookie, cannot know it."""
    return hmac.new(token.encode(), b"edgefleet-dashboard-csrf", hashlib.sha256).hexdigest()


def csrf_matches(viewer: Viewer, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), viewer.csrf.encode())


def signed_in(request: Request, session: Session) -> Viewer | None:
    """The signed-in token, noted as the request's author for the audit trail."""
    viewer = check_token(session, request.cookies.get(COOKIE))
    if viewer is not None:
        note_caller(request, viewer.name, viewer.role.value)
    return viewer


def remember(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site."""
    origin = request.headers.get("origin")
    if origin is None:  # not sent by every browser for same-origin posts
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None}
