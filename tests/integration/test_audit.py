"""The audit trail (issue 17.3) on a real control plane (uvicorn, auth, SQLite and
PostgreSQL): every write route is recorded or exempt by name; writes through the API,
``edgectl`` and the dashboard's forms each give an entry naming the token, its role,
the source, the client's address and tool; rollout history names who acted; ``GET
/audit`` and ``edgectl audit`` filter and page; nothing secret is kept."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from controlplane.audit.naming import EXEMPT, RULES, WRITES, template_of
from controlplane.audit.recorder import ANONYMOUS_PER_MINUTE
from controlplane.dashboard.session import csrf_token
from edgectl.cli import main as edgectl_main
from tests.support.controlplane import auth_headers
from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

_JSON = {"content-type": "application/json"}
_FORM = {"content-type": "application/x-www-form-urlencoded"}


def _token(plane: Plane, role: str, name: str) -> str:
    response = plane.http.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _audit(plane: Plane, **params: Any) -> list[dict[str, Any]]:
    response = plane.http.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def _newest_id(plane: Plane) -> int:
    entries = _audit(plane, limit=1)
    return int(entries[0]["id"]) if entries else 0


def _write_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, template) of every write route of the API and the dashboard."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(flatten(app.routes) if flatten else app.routes)
    found = {
        (method, template_of(str(route.path)))
        for route in routes
        if isinstance(getattr(route, "original_route", route), APIRoute)
        for method in route.methods or ()
        if method in WRITES
    }
    assert len(found) > 15, found
    return sorted(found)


def _concrete(template: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "0" * 64 if name == "digest" else "999999" if name.endswith("id") else "x"

    return re.sub(r"\{([^}]+)\}", value, template)


def _edgectl(
    capsys: pytest.CaptureFixture[str], url: str, token: str, *argv: str
) -> tuple[int, str]:
    code = edgectl_main(["--url", url, "--token", token, *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


def _sign_in(browser: httpx.Client, token: str) -> httpx.Response:
    return browser.post("/dashboard/login", content=urlencode({"token": token}), headers=_FORM)


def test_every_write_route_is_recorded_or_exempt_by_name(plane: Plane) -> None:
    assert plane.app is not None
    routes = _write_routes(plane.app)
    unnamed = [r for r in routes if r not in RULES and r not in EXEMPT]
    assert not unnamed, f"write routes the audit trail does not name: {unnamed}"
    assert not [r for r in (*RULES, *EXEMPT) if r not in routes], "a rule for no route"
    for method, template in routes:
        if template.startswith("/dashboard"):
            continue  # the dashboard's forms: test_dashboard_writes_are_recorded
        path = f"/api/v1{_concrete(template)}"
        before = _newest_id(plane)
        answer = plane.http.request(method, path, content=b"{}", headers=_JSON)
        entries = _audit(plane, limit=1)
        if (method, template) in EXEMPT:  # device writes: no entry
            assert _newest_id(plane) == before, (method, path, entries)
            continue
        newest = entries[0]
        assert newest["id"] > before, (method, path)
        assert newest["action"] == RULES[method, template].action.replace("{action}", "x")
        assert newest["status"] == answer.status_code, (method, path, newest)
        who = (newest["token_name"], newest["role"], newest["source"], newest["client_address"])
        assert who == ("bootstrap", "admin", "api", "127.0.0.1"), newest


def test_api_and_edgectl_writes_name_the_token_and_rollout_history_the_actor(
    plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(plane.http.base_url).rstrip("/")
    plane.fleet_on_v1(2)
    rid = plane.start({"canary": 1, "batches": 2})["id"]
    ops = _token(plane, "operator", "ops")
    viewer = _token(plane, "viewer", "watcher")

    # the API, with a plain HTTP client
    paused = plane.http.post(
        f"/api/v1/rollouts/{rid}/pause", json={"reason": "lunch"}, headers=auth_headers(ops)
    )
    assert paused.status_code == 200, paused.text
    entry = _audit(plane, limit=1)[0]
    assert entry["action"] == "rollout.pause" and entry["target"] == f"rollout {rid}"
    assert (entry["token_name"], entry["role"], entry["source"]) == ("ops", "operator", "api")
    assert entry["client_address"] == "127.0.0.1" and entry["status"] == 200
    assert entry["user_agent"].startswith("python-httpx/")
    assert entry["detail"] == {"reason": "lunch"}
    history = plane.rollout(rid)["history"][-1]
    assert history["by"] == "ops (operator) via api"
    assert history["message"] == "lunch; paused by ops (operator) via api"

    # edgectl: it says who it is in its User-Agent
    _edgectl(capsys, url, ops, "rollouts", "resume", str(rid))
    entry = _audit(plane, limit=1)[0]
    assert (entry["action"], entry["token_name"], entry["role"]) == (
        "rollout.resume",
        "ops",
        "operator",
    )
    assert re.fullmatch(r"edgectl/\S+", entry["user_agent"]), entry
    assert plane.rollout(rid)["history"][-1]["message"] == "resumed by ops (operator) via edgectl"

    # a refused write of a known token is recorded; an anonymous one is not
    refused = plane.http.post(f"/api/v1/rollouts/{rid}/abort", headers=auth_headers(viewer))
    assert refused.status_code == 403
    entry = _audit(plane, limit=1)[0]
    assert (entry["action"], entry["token_name"], entry["status"]) == (
        "rollout.abort",
        "watcher",
        403,
    )
    newest = entry["id"]
    with httpx.Client(base_url=url) as anonymous:
        assert anonymous.post(f"/api/v1/rollouts/{rid}/abort").status_code == 401
        bad = auth_headers("efk_not-a-real-token-at-all-000000")
        assert anonymous.post(f"/api/v1/rollouts/{rid}/abort", headers=bad).status_code == 401
    assert _newest_id(plane) == newest

    # a create is named by what it made; a rollback by the rollout it rolls back
    aborted = plane.http.post(f"/api/v1/rollouts/{rid}/abort", headers=auth_headers(ops))
    assert aborted.status_code == 200
    assert aborted.json()["reason"] == "aborted by ops (operator) via api"
    created = [e for e in _audit(plane, action="rollout.create")]
    assert created[-1]["target"] == f"rollout {rid}" and created[-1]["token_name"] == "bootstrap"
    assert created[-1]["detail"]["version"] == "2.0.0"
    assert plane.rollout(rid)["history"][0]["by"] == "bootstrap (admin) via api"

    # edgectl audit lists them, filtered, as a table and as JSON
    _, out = _edgectl(capsys, url, ops, "audit", "--target", f"rollout {rid}", "--json")
    listed = json.loads(out)
    actions = [e["action"] for e in listed]
    assert actions[:4] == ["rollout.abort", "rollout.abort", "rollout.resume", "rollout.pause"]
    assert actions[-1] == "rollout.create"
    _, out = _edgectl(capsys, url, ops, "audit", "--by", "ops", "--since", "1h")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "WHEN", "WHO"]
    assert len(lines) == 4 and all("ops (operator)" in line for line in lines[1:])
    assert "rollout.resume" in out and "edgectl/" in out
    _, out = _edgectl(capsys, url, ops, "audit", "--action", "fleet.")
    assert out.strip() == "no audit entries match"

    # nothing secret is kept: no token, in any entry
    everything = json.dumps(_audit(plane, limit=500))
    assert "efk_" not in everything
    token_entry = _audit(plane, action="token.create", limit=1)[0]
    assert token_entry["detail"] == {"name": "watcher", "role": "viewer"}
    assert re.fullmatch(r"token \d+", token_entry["target"])


def test_audit_filters_and_pages_newest_first_for_operators(
    plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(7):
        response = plane.http.post("/api/v1/fleets", json={"name": f"f{i}"})
        assert response.status_code == 201
    viewer = _token(plane, "viewer", "watcher")
    ops = _token(plane, "operator", "ops")
    assert plane.http.get("/api/v1/audit", headers=auth_headers(viewer)).status_code == 403
    assert plane.http.get("/api/v1/audit", headers=auth_headers(ops)).status_code == 200

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"action": "fleet.create", "limit": 3}
    while True:
        response = plane.http.get("/api/v1/audit", params=params)
        assert response.status_code == 200
        seen += response.json()
        cursor = response.headers.get("X-Next-Before")
        if cursor is None:
            assert "link" not in response.headers
            break
        assert 'rel="next"' in response.headers["link"]
        params["before"] = cursor
    assert [e["target"] for e in seen] == [f"fleet f{i}" for i in reversed(range(7))]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)

    assert [e["target"] for e in _audit(plane, target="fleet f3")] == ["fleet f3"]
    assert {e["token_name"] for e in _audit(plane, token="bootstrap")} == {"bootstrap"}
    assert _audit(plane, token="nobody") == []
    assert {e["action"] for e in _audit(plane, action="token.")} == {"token.create"}
    assert _audit(plane, since="2999-01-01T00:00:00Z") == []
    assert len(_audit(plane, since="2000-01-01T00:00:00Z")) == 9
    bad = plane.http.get("/api/v1/audit", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.json()["detail"]
    unix = plane.http.get("/api/v1/audit", params={"since": "1700000000"})
    assert unix.status_code == 422 and "expected an ISO 8601 time" in unix.json()["detail"]

    url = str(plane.http.base_url).rstrip("/")
    _, out = _edgectl(
        capsys, url, ops, "audit", "--action", "fleet.create", "--limit", "5", "--json"
    )
    assert [e["target"] for e in json.loads(out)] == [f"fleet f{i}" for i in (6, 5, 4, 3, 2)]
    code = edgectl_main(["--url", url, "--token", ops, "audit", "--since", "yesterday"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edgectl: error: invalid --since") and err.count("\n") == 1
    code = edgectl_main(["--url", url, "--token", viewer, "audit"])
    err = capsys.readouterr().err
    assert code != 0 and "(403)" in err and err.count("\n") == 1


def test_dashboard_writes_are_recorded(plane: Plane) -> None:
    plane.fleet_on_v1(2)
    rid = plane.start({"canary": 1, "batches": 2})["id"]
    ops = _token(plane, "operator", "ops")
    viewer = _token(plane, "viewer", "watcher")
    base = plane.http.base_url
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
        # a failed sign-in: recorded without the token it tried
        wrong = "efk_a-wrong-token-for-the-dashboard-0000"
        assert _sign_in(browser, wrong).status_code == 401
        entry = _audit(plane, limit=1)[0]
        assert (entry["action"], entry["status"], entry["source"]) == (
            "dashboard.sign-in",
            401,
            "dashboard",
        )
        assert entry["token_name"] is None and entry["detail"] == {}
        assert wrong not in json.dumps(entry)

        assert _sign_in(browser, ops).status_code == 303
        entry = _audit(plane, limit=1)[0]
        assert (entry["action"], entry["token_name"], entry["role"], entry["status"]) == (
            "dashboard.sign-in",
            "ops",
            "operator",
            303,
        )
        form = {"csrf": csrf_token(ops), "reason": "store hours"}
        paused = browser.post(
            f"/dashboard/rollouts/{rid}/pause", content=urlencode(form), headers=_FORM
        )
        assert paused.status_code == 303, paused.text
        entry = _audit(plane, limit=1)[0]
        assert entry["action"] == "rollout.pause" and entry["target"] == f"rollout {rid}"
        assert (entry["token_name"], entry["role"], entry["source"]) == (
            "ops",
            "operator",
            "dashboard",
        )
        assert entry["client_address"] == "127.0.0.1"
        assert entry["detail"] == {"reason": "store hours"}  # never the CSRF value
        history = plane.rollout(rid)["history"][-1]
        assert history["message"] == "store hours; paused by ops (operator) via dashboard"

        page = browser.get("/dashboard/audit", params={"target": f"rollout {rid}"})
        assert page.status_code == 200
        assert 'href="/dashboard/audit"' in page.text
        assert "rollout.pause" in page.text and "ops (operator)" in page.text
        assert "rollout.create" in page.text and "dashboard.sign-in" not in page.text

        assert browser.post("/dashboard/logout").status_code == 303
        entry = _audit(plane, limit=1)[0]
        assert (entry["action"], entry["token_name"]) == ("dashboard.sign-out", "ops")

    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
        assert _sign_in(browser, viewer).status_code == 303
        refused = browser.get("/dashboard/audit")
        assert refused.status_code == 403
        assert "role viewer may not read the audit trail" in refused.text


def test_failed_sign_ins_from_one_address_cannot_fill_the_trail(plane: Plane) -> None:
    """Anyone may post a sign-in: past ANONYMOUS_PER_MINUTE a minute from one address,
    failed ones are not recorded (a known token's writes always are)."""
    with httpx.Client(base_url=plane.http.base_url, follow_redirects=False, timeout=30) as b:
        for _ in range(ANONYMOUS_PER_MINUTE + 15):
            assert _sign_in(b, "efk_a-wrong-token-for-the-dashboard-0000").status_code == 401
    failed = [e for e in _audit(plane, limit=200) if e["action"] == "dashboard.sign-in"]
    # a minute may turn during the loop: at most two minutes' worth
    assert ANONYMOUS_PER_MINUTE <= len(failed) <= 2 * ANONYMOUS_PER_MINUTE
    plane.post("/fleets", {"name": "after-the-flood"}, 201)
    assert _audit(plane, limit=1)[0]["target"] == "fleet after-the-flood"
