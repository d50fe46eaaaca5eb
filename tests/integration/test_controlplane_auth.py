"""API auth against a real control plane: bearer tokens, roles, bootstrap, revocation.

The app is served by a real uvicorn on SQLite and PostgreSQL. The route sweep walks
``app.routes``, so routes added later (rollouts, labels, …) are covered without edits.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr
from sqlmodel import Session, select

from controlplane.app import create_app
from controlplane.auth.bootstrap import bootstrap_admin
from controlplane.auth.policy import API_PREFIX, OPERATOR_READS, PUBLIC_POSTS, PUBLIC_READS
from controlplane.db import init_db, make_engine
from controlplane.models import ApiToken
from controlplane.publisher import MemoryPublisher
from tests.support.controlplane import (
    ADMIN_TOKEN,
    api_client,
    auth_headers,
    run_controlplane,
    serve_app,
    settings,
    signed_bundle,
)
from tests.support.mosquitto import Broker
from tests.support.trust import TrustKit

pytestmark = pytest.mark.integration

_EXEMPT = re.compile(rf"^{API_PREFIX}/(blobs|trust|device-ca)(/|$)")
_READS = {"GET", "HEAD"}


@pytest.fixture
def app(tmp_path: Path, database_url: str, trust_kit: TrustKit) -> FastAPI:
    return create_app(
        settings(tmp_path, trust_kit, mqtt_url="mqtt://127.0.0.1:1", database_url=database_url),
        publisher=MemoryPublisher(),
    )


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    with serve_app(app) as base:
        yield base


@pytest.fixture
def admin(url: str) -> Iterator[httpx.Client]:
    with api_client(url, timeout=10) as http:
        yield http


def _token(admin: httpx.Client, role: str, name: str | None = None) -> str:
    response = admin.post("/api/v1/tokens", json={"name": name or f"t-{role}", "role": role})
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


def _concrete(path: str) -> str:
    """A request path for a route path: every ``{param}`` filled with a plausible value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return "0" * 64 if name == "digest" else "1" if name.endswith("id") else "x"

    return re.sub(r"\{([^}]+)\}", value, path)


def _api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every API route; newer FastAPI nests included routers."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(flatten(app.routes) if flatten else app.routes)
    found = [
        (method, str(route.path))
        for route in routes
        if isinstance(getattr(route, "original_route", route), APIRoute)
        and str(route.path).startswith(API_PREFIX + "/")
        for method in sorted(route.methods or ())
    ]
    assert len(found) > 10, found  # the sweep sees the real API
    return found


def test_every_api_route_needs_a_token_and_writes_need_operator(
    app: FastAPI, url: str, admin: httpx.Client
) -> None:
    viewer = auth_headers(_token(admin, "viewer"))
    bad = auth_headers("efk_not-a-real-token-at-all-000000")
    checked = 0
    with httpx.Client(base_url=url, timeout=10) as http:
        for method, path in _api_routes(app):
            target = _concrete(path)
            anonymous = http.request(method, target)
            if method in _READS and _EXEMPT.match(path):
                assert anonymous.status_code not in (401, 403), (method, path)
                continue
            if method == "POST" and path.startswith(PUBLIC_POSTS):
                # a device enrolls or renews with what is in the body, never an API token
                assert anonymous.status_code != 403, (method, path)
                assert anonymous.json() != {"detail": "missing bearer token"}, (method, path)
                continue
            checked += 1
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.json() == {"detail": "missing bearer token"}
            assert anonymous.headers["www-authenticate"] == "Bearer"
            forged = http.request(method, target, headers=bad)
            assert forged.status_code == 401, (method, path)
            assert forged.json() == {"detail": "invalid or revoked token"}
            as_viewer = http.request(method, target, headers=viewer)
            if method in _READS and not path.startswith((f"{API_PREFIX}/tokens", *OPERATOR_READS)):
                assert as_viewer.status_code not in (401, 403), (method, path, as_viewer.text)
            else:
                assert as_viewer.status_code == 403, (method, path, as_viewer.text)
                assert as_viewer.json() == {"detail": f"role viewer may not {method} {target}"}, (
                    path
                )
    assert checked > 10
    # what devices reach without an API token: nothing else
    assert PUBLIC_READS == ("/api/v1/blobs", "/api/v1/trust", "/api/v1/device-ca")
    assert PUBLIC_POSTS == ("/api/v1/enroll",)


def test_roles_admin_operator_viewer(url: str, admin: httpx.Client, tmp_path: Path) -> None:
    operator = auth_headers(_token(admin, "operator"))
    viewer = auth_headers(_token(admin, "viewer"))
    with httpx.Client(base_url=url, timeout=10) as http:
        # an operator writes: a blob upload (and a device may then download it without a token)
        bundle = signed_bundle(tmp_path, name="det", version="1.0.0")
        ref = bundle.files[0]
        data = (bundle.directory / ref.path).read_bytes()
        put = http.put(f"/api/v1/blobs/sha256/{ref.sha256}", content=data, headers=operator)
        assert put.status_code == 201, put.text
        assert (
            http.put(f"/api/v1/blobs/sha256/{ref.sha256}", content=data, headers=viewer).status_code
            == 403
        )
        download = http.get(f"/api/v1/blobs/sha256/{ref.sha256}")
        assert download.status_code == 200 and download.content == data
        # ... and the root-signed trust documents, as agents do
        assert http.get("/api/v1/trust/1").status_code == 200
        publish = http.post("/api/v1/trust", content=b"{}", headers=viewer)
        assert publish.status_code == 403
        # reads: viewer yes; tokens: admin only
        assert http.get("/api/v1/devices", headers=viewer).json() == []
        for who in (operator, viewer):
            assert http.get("/api/v1/tokens", headers=who).status_code == 403
            created = http.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=who)
            assert created.status_code == 403
        me = http.get("/api/v1/whoami", headers=operator).json()
        assert me["role"] == "operator" and me["name"] == "t-operator"
    # "Bearer" is case-insensitive; other schemes are not a bearer token
    lower = {"Authorization": f"bearer {ADMIN_TOKEN}"}
    assert httpx.get(f"{url}/api/v1/whoami", headers=lower).json()["role"] == "admin"
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert httpx.get(f"{url}/api/v1/whoami", headers=basic).status_code == 401
    # exempt from auth: health and the API's documentation (openapi.json: in a process,
    # below, as building it in this process warns about the blob route's GET+HEAD)
    for path in ("/healthz", "/docs"):
        assert httpx.get(f"{url}{path}").status_code == 200, path


def test_tokens_are_hashed_listed_without_secret_and_revocable(
    app: FastAPI, admin: httpx.Client
) -> None:
    created = admin.post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
    assert created.status_code == 201
    body = created.json()
    token = body["token"]
    assert token.startswith("efk_") and len(token) >= 40
    assert token.startswith(body["prefix"]) and len(body["prefix"]) < len(token)
    assert set(body) == {
        "id",
        "name",
        "role",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
        "token",
    }
    # at rest: only the hash
    engine = app.state.services.engine
    with Session(engine) as session:
        rows = session.exec(select(ApiToken)).all()
    assert [r.name for r in rows] == ["bootstrap", "ci"]
    assert all(token not in (r.token_sha256, r.prefix) for r in rows)
    # listed without the token; last_used_at set once it is used
    headers = auth_headers(token)
    assert admin.get("/api/v1/whoami", headers=headers).status_code == 200
    listed = admin.get("/api/v1/tokens").json()
    assert [t["name"] for t in listed] == ["bootstrap", "ci"]
    assert all("token" not in t for t in listed)
    assert listed[1]["last_used_at"] is not None and listed[1]["revoked_at"] is None
    # revoked: refused at once, still listed with revoked_at
    revoked = admin.delete(f"/api/v1/tokens/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = admin.get("/api/v1/devices", headers=headers)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid or revoked token"}
    assert admin.get("/api/v1/tokens").json()[1]["revoked_at"] is not None
    # unknown ids, bad bodies, and the last admin token
    assert admin.delete("/api/v1/tokens/999").status_code == 404
    bad_role = admin.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert bad_role.status_code == 422 and "role" in bad_role.json()["detail"]
    assert admin.post("/api/v1/tokens", json={"name": "", "role": "viewer"}).status_code == 422
    bootstrap_id = listed[0]["id"]
    last = admin.delete(f"/api/v1/tokens/{bootstrap_id}")
    assert last.status_code == 409 and "last admin token" in last.json()["detail"]
    second = _token(admin, "admin", "second-admin")
    assert admin.delete(f"/api/v1/tokens/{bootstrap_id}").status_code == 200
    assert admin.get("/api/v1/tokens").status_code == 401  # the bootstrap token is gone
    with api_client(str(admin.base_url), token=second) as http:
        assert http.get("/api/v1/tokens").status_code == 200


def test_bootstrap_from_env_is_stored_once(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    init_db(engine)
    try:
        out = io.StringIO()
        assert bootstrap_admin(engine, SecretStr(ADMIN_TOKEN), out=out)
        assert not bootstrap_admin(engine, SecretStr(ADMIN_TOKEN), out=out)
        assert not bootstrap_admin(engine, SecretStr("efk_another-token-1234567890"), out=out)
        assert not bootstrap_admin(engine, None, out=out)
        assert out.getvalue() == ""  # a given token is never printed
        with Session(engine) as session:
            rows = session.exec(select(ApiToken)).all()
        assert [(r.name, r.role) for r in rows] == [("bootstrap", "admin")]
    finally:
        engine.dispose()


def test_replicas_starting_together_create_one_admin_token(
    tmp_path: Path, database_url: str
) -> None:
    engines = [make_engine(database_url) for _ in range(4)]
    init_db(engines[0])
    outputs = [io.StringIO() for _ in engines]
    results: list[bool] = []
    start = threading.Barrier(len(engines))

    def boot(index: int) -> None:
        start.wait()
        results.append(bootstrap_admin(engines[index], None, out=outputs[index]))

    threads = [threading.Thread(target=boot, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert sorted(results) == [False, False, False, True]
        printed = [o.getvalue() for o in outputs if o.getvalue()]
        assert len(printed) == 1 and printed[0].startswith("admin token (shown once): efk_")
        with Session(engines[0]) as session:
            assert len(session.exec(select(ApiToken)).all()) == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_first_start_prints_a_generated_admin_token_once(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit
) -> None:
    env = {"EDGEFLEET_ADMIN_TOKEN": ""}
    with run_controlplane(
        tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, env=env
    ) as cp:
        log = cp.log.read_text()
        found = re.findall(r"admin token \(shown once\): (efk_[A-Za-z0-9_-]+)", log)
        assert len(found) == 1, log
        token = found[0]
        assert log.count(token) == 1  # printed once, never logged
        with api_client(cp.url, token=token, timeout=10) as http:
            assert http.get("/api/v1/whoami").json()["role"] == "admin"
        with api_client(cp.url, timeout=10) as http:  # the tests' token is not there
            assert http.get("/api/v1/devices").status_code == 401
        assert "/api/v1/tokens" in httpx.get(f"{cp.url}/openapi.json").json()["paths"]
    with run_controlplane(
        tmp_path / "cp", mqtt_url=mosquitto.url, trust_kit=trust_kit, env=env
    ) as cp:
        assert cp.log.read_text().count("admin token (shown once)") == 1  # not again


def test_unusable_admin_token_refuses_to_start(
    tmp_path: Path, mosquitto: Broker, trust_kit: TrustKit
) -> None:
    with (
        pytest.raises(RuntimeError, match="EDGEFLEET_ADMIN_TOKEN is too short"),
        run_controlplane(
            tmp_path / "cp",
            mqtt_url=mosquitto.url,
            trust_kit=trust_kit,
            env={"EDGEFLEET_ADMIN_TOKEN": "short"},
        ),
    ):
        pass
