"""The API matches its description (issue 16.4): the OpenAPI document's error schema is
what the server answers, operation ids are unique, a request without a token is refused
before its body is looked at, and ``/docs`` and ``/redoc`` load nothing from the
internet (an air-gapped host shows them)."""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest

from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def test_the_description_documents_the_errors_the_server_answers(plane: Plane) -> None:
    schema = plane.http.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in _METHODS
    ]
    ids = Counter(op["operationId"] for _, _, op in operations)
    assert [i for i, n in ids.items() if n > 1] == []
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, method, op in operations:
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (path, method, status)
        if path.startswith("/api/v1/tokens") or path == "/api/v1/devices":
            assert {"401", "403"} <= set(op["responses"]), (path, method)
    invalid = plane.http.post("/api/v1/tokens", json={"name": "", "role": "nobody"})
    assert invalid.status_code == 422
    assert isinstance(invalid.json()["detail"], str)  # as documented: one line


def test_no_token_is_refused_before_the_body_is_read(plane: Plane) -> None:
    with httpx.Client(base_url=plane.http.base_url) as anonymous:
        answer = anonymous.post(
            "/api/v1/tokens", content=b"x", headers={"content-type": "application/json"}
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"].lower().startswith("bearer")
        answer = anonymous.post("/api/v1/tokens", json={"name": "", "role": "nobody"})
        assert answer.status_code == 401, answer.text  # a malformed body too
    viewer = plane.post("/tokens", {"name": "v", "role": "viewer"}, 201)["token"]
    with httpx.Client(base_url=plane.http.base_url) as weak:
        answer = weak.post(
            "/api/v1/rollouts",
            content=b"x",
            headers={"content-type": "application/json", "authorization": f"Bearer {viewer}"},
        )
        assert answer.status_code == 403, answer.text
    answer = plane.http.post(
        "/api/v1/tokens", content=b"x", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422  # with a token, the body is what is wrong


def test_a_405_allows_every_method_the_path_answers(plane: Plane) -> None:
    answer = plane.http.put("/api/v1/tokens", json={})
    assert answer.status_code == 405
    assert answer.headers.get_list("allow") == ["GET, POST"]
    answer = plane.http.delete("/healthz")
    assert answer.status_code == 405 and answer.headers.get_list("allow") == ["GET"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_the_internet(plane: Plane, page: str) -> None:
    with httpx.Client(base_url=plane.http.base_url) as browser:
        html = browser.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        scripts = [a for a in assets if a.endswith(".js")]
        assert scripts, html
        assert not [a for a in assets if re.match(r"(https?:)?//", a)], assets
        for asset in assets:
            answer = browser.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000 or asset.endswith(".png"), asset
        assert "/openapi.json" in html
