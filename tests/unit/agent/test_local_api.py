"""The local API over real ONNX Runtime runners on loopback: binary tensors in and out,
JSON and binary mixed, clear 400s for wrong sizes, 405/415/413, /metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from agent.serving import ServedModels
from agent.serving.http_wire import Limits
from agent.serving.local_api import LocalApiServer, build_app
from tests.support.loaded import loaded_model
from tests.support.onnx_models import bool_input_model, two_input_model

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    models = ServedModels()
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    models.activate(loaded_model(tmp_path, bool_input_model, "masked"))
    app = build_app(models, server_version="9.9", data_dir=tmp_path)
    server = LocalApiServer(app, "127.0.0.1", 0, limits=Limits(max_body_bytes=64 * 1024))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield client
    finally:
        server.stop()
        models.clear()


def _binary_request(
    request: dict[str, Any], blobs: list[bytes], path: str = "/v2/models/two/infer"
) -> tuple[str, bytes, dict[str, str]]:
    header = json.dumps(request).encode()
    return path, header + b"".join(blobs), {HEADER: str(len(header))}


def _split(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    n = int(response.headers[HEADER])
    return json.loads(response.content[:n]), response.content[n:]


X = np.arange(8, dtype=np.float32).reshape(2, 4)
IDS = np.array([3, 4], dtype=np.int64)
Y = X @ (np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5) + IDS[:, None].astype(np.float32)


def _x_binary() -> dict[str, Any]:
    return {
        "name": "x",
        "shape": [2, 4],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 32},
    }


def test_server_metadata_lists_the_binary_extension(api: httpx.Client) -> None:
    assert api.get("/v2").json() == {
        "name": "edgefleet-agent",
        "version": "9.9",
        "extensions": ["binary_tensor_data"],
    }


def test_binary_inputs_and_outputs(api: httpx.Client) -> None:
    request = {
        "id": "r7",
        "inputs": [
            _x_binary(),
            {
                "name": "ids",
                "shape": [2],
                "datatype": "INT64",
                "parameters": {"binary_data_size": 16},
            },
        ],
        "parameters": {"binary_data_output": True},
    }
    path, body, headers = _binary_request(request, [X.tobytes(), IDS.tobytes()])
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    meta, data = _split(response)
    assert meta["id"] == "r7" and meta["model_version"] == "1.2"
    assert [(o["name"], o["parameters"]["binary_data_size"]) for o in meta["outputs"]] == [
        ("y", 24),
        ("n", 16),
    ]
    np.testing.assert_array_equal(np.frombuffer(data[:24], np.float32).reshape(2, 3), Y)
    assert np.frombuffer(data[24:], np.int64).tolist() == [6, 8]


def test_mixed_json_and_binary_with_output_choices(api: httpx.Client) -> None:
    request = {
        "inputs": [_x_binary(), {"name": "ids", "shape": [2], "datatype": "INT64", "data": [3, 4]}],
        "outputs": [{"name": "n"}, {"name": "y", "parameters": {"binary_data": True}}],
    }
    path, body, headers = _binary_request(request, [X.tobytes()])
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    meta, data = _split(response)
    assert meta["outputs"][0] == {"name": "n", "shape": [2], "datatype": "INT64", "data": [6, 8]}
    np.testing.assert_array_equal(np.frombuffer(data, np.float32).reshape(2, 3), Y)


def test_binary_input_json_output(api: httpx.Client) -> None:
    request = {
        "inputs": [
            {
                "name": "x",
                "shape": [1, 2],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 8},
            },
            {
                "name": "mask",
                "shape": [1, 2],
                "datatype": "BOOL",
                "parameters": {"binary_data_size": 2},
            },
        ]
    }
    x = np.array([[1.5, 2.5]], np.float32).tobytes()
    path, body, headers = _binary_request(request, [x, b"\x00\x01"], "/v2/models/masked/infer")
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 200 and HEADER not in response.headers
    assert response.headers["content-type"] == "application/json"
    assert response.json()["outputs"] == [
        {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 2.5]}
    ]


def test_large_json_tensors_answer_as_binary_ones(api: httpx.Client) -> None:
    # > 8 KiB of JSON: parsed straight into arrays (agent.serving.oip_json), nested x too
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 4)).astype(np.float32)
    ids = rng.integers(-(2**40), 2**40, 400)
    as_json = {
        "inputs": [
            {"name": "x", "shape": [400, 4], "datatype": "FP32", "data": x.tolist()},
            {"name": "ids", "shape": [400], "datatype": "INT64", "data": ids.tolist()},
        ]
    }
    response = api.post("/v2/models/two/infer", json=as_json)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    request = {
        "inputs": [
            {**_x_binary(), "shape": [400, 4], "parameters": {"binary_data_size": x.nbytes}},
            {"name": "ids", "shape": [400], "datatype": "INT64", "data": ids.tolist()},
        ],
        "parameters": {"binary_data_output": True},
    }
    path, body, headers = _binary_request(request, [x.tobytes()])
    _, data = _split(api.post(path, content=body, headers=headers))
    y = np.frombuffer(data[: 400 * 3 * 4], np.float32).reshape(400, 3)
    np.testing.assert_array_equal(np.asarray(outputs["y"]["data"], np.float32).reshape(400, 3), y)
    assert outputs["n"]["data"] == (ids * 2).tolist()

    as_json["inputs"][0]["data"][7] = [1.0, 2.0, 3.0]  # ragged: the same one-line 400
    response = api.post("/v2/models/two/infer", json=as_json)
    assert response.status_code == 400
    assert response.json()["error"].startswith("input 'x': setting an array element")


@pytest.mark.parametrize(
    ("blobs", "header", "message"),
    [
        (
            [X.tobytes()[:28]],
            None,
            "binary data is 28 bytes, the inputs' binary_data_size add up to 32",
        ),
        ([X.tobytes()], "9999", "bad Inference-Header-Content-Length '9999'"),
        ([X.tobytes()], "x", "bad Inference-Header-Content-Length 'x'"),
    ],
)
def test_wrong_sizes_are_one_line_400s(
    api: httpx.Client, blobs: list[bytes], header: str | None, message: str
) -> None:
    request = {
        "inputs": [_x_binary(), {"name": "ids", "shape": [2], "datatype": "INT64", "data": [3, 4]}]
    }
    path, body, headers = _binary_request(request, blobs)
    if header is not None:
        headers[HEADER] = header
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert "\n" not in response.json()["error"]


def test_transport_and_method_errors(api: httpx.Client) -> None:
    wrong = api.get("/v2/models/two/infer")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert api.post("/v2/health/live", content=b"").status_code == 405
    assert api.get("/v2/models/two/bogus").status_code == 404
    assert api.get("/elsewhere").json() == {"error": "not found"}
    gz = api.post("/v2/models/two/infer", content=b"x", headers={"content-encoding": "gzip"})
    assert gz.status_code == 415 and "gzip" in gz.json()["error"]
    big = api.post("/v2/models/two/infer", content=b"0" * (64 * 1024 + 1))
    assert big.status_code == 413 and "exceeds the limit of 65536" in big.json()["error"]
    assert api.head("/v2/models/two").status_code == 200


def test_metrics_are_prometheus_text(api: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "ids", "shape": [1], "datatype": "INT64", "data": [7]},
        ]
    }
    assert api.post("/v2/models/two/infer", json=body).status_code == 200
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert "# TYPE edgefleet_inference_requests_total counter" in lines
    assert any(
        line.startswith('edgefleet_inference_requests_total{model="two",version="1.2"')
        and line.endswith(" 1")
        for line in lines
    )


def test_concurrent_clients_each_get_their_own_answer(api: httpx.Client) -> None:
    def client(i: int) -> list[list[int]]:
        ids = np.array([i, i + 1], dtype=np.int64)
        request = {
            "inputs": [
                _x_binary(),
                {"name": "ids", "shape": [2], "datatype": "INT64", "data": ids.tolist()},
            ],
            "outputs": [{"name": "n", "parameters": {"binary_data": True}}],
        }
        path, body, headers = _binary_request(request, [X.tobytes()])
        got = []
        with httpx.Client(base_url=str(api.base_url), timeout=10) as own:
            for _ in range(5):
                response = own.post(path, content=body, headers=headers)
                assert response.status_code == 200, response.text
                got.append(np.frombuffer(_split(response)[1], np.int64).tolist())
        return got

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    assert results == [[[2 * i, 2 * i + 2]] * 5 for i in range(8)]
