"""The local inference API under abuse (issue 12, point 5): twice its connection limit
of slow clients, some trickling a request one byte at a time and some idle, must not
lock out clients that send whole requests promptly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from agent.serving import ServedModels
from agent.serving.http_wire import Limits
from agent.serving.local_api import LocalApiServer, build_app
from tests.support.loaded import loaded_model
from tests.support.onnx_models import two_input_model
from tests.support.slow_clients import SlowClients

pytestmark = pytest.mark.integration

LIMIT = 8  # max_connections of the server under test
TRICKLE_EVERY = 0.25  # seconds between two bytes of a trickling client

X = np.arange(8, dtype=np.float32).reshape(2, 4)
IDS = np.array([3, 4], dtype=np.int64)
Y = X @ (np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5) + IDS[:, None].astype(np.float32)
BODY = json.dumps(
    {
        "inputs": [
            {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()},
            {"name": "ids", "shape": [2], "datatype": "INT64", "data": IDS.tolist()},
        ]
    }
).encode()
RAW_REQUEST = (
    b"POST /v2/models/two/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, tuple[str, int]]]:
    models = ServedModels()
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    limits = Limits(max_connections=LIMIT, keep_alive_s=60, read_timeout_s=1.0)
    server = LocalApiServer(build_app(models, server_version="9.9"), "127.0.0.1", 0, limits=limits)
    url = server.start()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        yield url, (host, int(port))
    finally:
        server.stop(5)
        models.clear()


def _infer(url: str) -> tuple[int, str]:
    """One real request on a new connection: (status, outcome)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/v2/models/two/infer", content=BODY)
    if response.status_code != 200:
        return response.status_code, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    ok = np.allclose(outputs["y"], Y.ravel()) and outputs["n"] == (IDS * 2).tolist()
    return 200, "ok" if ok else f"wrong outputs {outputs}"


@pytest.mark.xfail(strict=True, reason="issue 12.5: slow clients hold every connection (503)")
def test_slow_and_idle_clients_do_not_lock_out_real_requests(
    served: tuple[str, tuple[str, int]],
) -> None:
    url, address = served
    with (
        SlowClients(
            address, trickle=LIMIT, idle=LIMIT, request=RAW_REQUEST, interval=TRICKLE_EVERY
        ),
        ThreadPoolExecutor(4) as pool,
    ):
        outcomes = list(pool.map(_infer, [url] * 12))
    assert outcomes == [(200, "ok")] * 12
