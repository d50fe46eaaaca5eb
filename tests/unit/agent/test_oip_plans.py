"""Binary requests whose JSON header was decoded before (``agent.serving.oip_plans``): the
same answers and the same errors as a first decode, over the real local API, and never
a plan made for another model (a version swapped in since)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from agent.serving import ServedModels
from agent.serving.local_api import LocalApi, LocalApiServer, build_app
from tests.support.loaded import loaded_model
from tests.support.onnx_models import affine_model, bool_input_model

HEADER = "Inference-Header-Content-Length"


def _post(client: httpx.Client, model: str, header: bytes, data: bytes) -> httpx.Response:
    return client.post(
        f"/v2/models/{model}/infer",
        content=header + data,
        headers={HEADER: str(len(header)), "Content-Type": "application/octet-stream"},
    )


def _affine_header(batch: int) -> bytes:
    tensor = {
        "name": "x",
        "shape": [batch, 4],
        "datatype": "FP32",
        "parameters": {"binary_data_size": batch * 16},
    }
    outputs = [{"name": "y", "parameters": {"binary_data": True}}]
    return json.dumps({"inputs": [tensor], "outputs": outputs}).encode()


def _answer(response: httpx.Response) -> tuple[dict[str, object], np.ndarray]:
    assert response.status_code == 200, response.text
    n = int(response.headers[HEADER])
    return json.loads(response.content[:n]), np.frombuffer(response.content[n:], np.float32)


@pytest.fixture
def served() -> Iterator[tuple[ServedModels, LocalApi, httpx.Client]]:
    models = ServedModels()
    app = build_app(models, server_version="9.9")
    server = LocalApiServer(app, "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield models, app, client
    finally:
        server.stop()
        models.clear()


def test_a_repeated_header_answers_as_the_first(
    tmp_path: Path, served: tuple[ServedModels, LocalApi, httpx.Client]
) -> None:
    models, app, client = served
    models.activate(loaded_model(tmp_path, affine_model, "affine", "1.0"))  # y = 2x + 1
    header = _affine_header(2)
    answers = []
    # the first decodes in full; the second from the plan, which keeps its answer's
    # JSON header; the third is answered with that header and its own tensor bytes
    for x in (np.arange(8, dtype=np.float32), np.ones(8, dtype=np.float32), -np.ones(8)):
        meta, y = _answer(_post(client, "affine", header, x.astype(np.float32).tobytes()))
        np.testing.assert_array_equal(y, 2 * x + 1)
        answers.append(meta)
    assert app._plans.knows(header) and app._plans._plans[header].answers
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 32}}
    ]
    # the same header with a binary part of another size: the error of a first decode
    short = _post(client, "affine", header, np.ones(7, dtype=np.float32).tobytes())
    assert short.status_code == 400
    assert short.json() == {
        "error": "binary data is 28 bytes, the inputs' binary_data_size add up to 32"
    }


def test_a_plan_is_never_used_for_another_model(
    tmp_path: Path, served: tuple[ServedModels, LocalApi, httpx.Client]
) -> None:
    models, _, client = served
    models.activate(loaded_model(tmp_path, affine_model, "affine", "1.0"))
    header = _affine_header(1)
    x = np.arange(4, dtype=np.float32).tobytes()
    assert _answer(_post(client, "affine", header, x))[0]["model_version"] == "1.0"
    swapped = loaded_model(tmp_path, lambda p: affine_model(p, scale=3.0), "affine", "2.0")
    models.activate(swapped)
    meta, y = _answer(_post(client, "affine", header, x))
    assert meta["model_version"] == "2.0"
    np.testing.assert_array_equal(y, 3 * np.arange(4, dtype=np.float32) + 1)
    # a header decoded for one model does not fit another one's inputs
    models.activate(loaded_model(tmp_path, bool_input_model, "masked", "1.0"))
    wrong = _post(client, "masked", header, x)
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "input 'x': shape [1, 4], expected [?, 2]"}


def test_what_depends_on_the_bytes_is_still_checked(
    tmp_path: Path, served: tuple[ServedModels, LocalApi, httpx.Client]
) -> None:
    models, _, client = served
    models.activate(loaded_model(tmp_path, bool_input_model, "masked", "1.0"))
    tensors = [
        {"name": n, "shape": [1, 2], "datatype": t, "parameters": {"binary_data_size": size}}
        for n, t, size in (("x", "FP32", 8), ("mask", "BOOL", 2))
    ]
    header = json.dumps({"inputs": tensors}).encode()
    x = np.array([1.5, 2.5], dtype=np.float32).tobytes()
    ok = _post(client, "masked", header, x + bytes([0, 1]))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [0.0, 2.5]
    bad = _post(client, "masked", header, x + bytes([0, 2]))  # same header, a BOOL byte of 2
    assert bad.status_code == 400
    assert bad.json() == {"error": "input 'mask': BOOL bytes must be 0 or 1"}
