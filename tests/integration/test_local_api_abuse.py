"""The local inference API under abuse (issue 12, point 5): twice its connection limit
of slow clients, half trickling a request one byte at a time and half idle, must not
lock out clients that send whole requests promptly; the slow ones are cut off, by the
fair connection policy or by the whole-request deadline (408) and idle timeout.

Bounded: the deadlines are short here (1.5 s for a request, 3 s idle), the waits for
success generous, and no assertion depends on a timing the server does not set."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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
from tests.support.ports import wait_until
from tests.support.slow_clients import SlowClients

pytestmark = pytest.mark.integration

LIMIT = 8  # max_connections of the server under test
DEADLINE = 1.5  # request_timeout_s: from a request's first byte to its last
IDLE = 3.0  # keep_alive_s
TRICKLE_EVERY = 0.25  # seconds between two bytes of a trickling client
CLIENTS, REQUESTS = 4, 3  # real clients, each sending requests on its own connection

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


Serve = Callable[[Limits], tuple[str, tuple[str, int]]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts the local API over the two-input model with given limits: (url, address)."""
    models = ServedModels()
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    servers: list[LocalApiServer] = []

    def start(limits: Limits) -> tuple[str, tuple[str, int]]:
        server = LocalApiServer(
            build_app(models, server_version="9.9"), "127.0.0.1", 0, limits=limits
        )
        servers.append(server)
        url = server.start()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return url, (host, int(port))

    try:
        yield start
    finally:
        for server in servers:
            server.stop(5)
        models.clear()


def _outcome(response: httpx.Response) -> tuple[int, str]:
    if response.status_code != 200:
        return response.status_code, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    ok = np.allclose(outputs["y"], Y.ravel()) and outputs["n"] == (IDS * 2).tolist()
    return 200, "ok" if ok else f"wrong outputs {outputs}"


def _real_client(url: str) -> list[tuple[int, str]]:
    """``REQUESTS`` inferences on one keep-alive connection: (status, outcome) each; the
    10 s client timeout bounds each one."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            _outcome(client.post("/v2/models/two/infer", content=BODY)) for _ in range(REQUESTS)
        ]


def _real_requests(url: str) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return [o for outcomes in pool.map(_real_client, [url] * CLIENTS) for o in outcomes]


def test_slow_and_idle_clients_do_not_lock_out_real_requests(serve: Serve) -> None:
    """The fair policy alone: no deadline can fire during the test (60 s), yet every
    real request is served while the slow clients are still at it."""
    url, address = serve(Limits(max_connections=LIMIT, request_timeout_s=60, keep_alive_s=60))
    with SlowClients(
        address, trickle=LIMIT, idle=LIMIT, request=RAW_REQUEST, interval=TRICKLE_EVERY
    ) as slow:
        # 16 slow connections for 8 slots: each new one took the slot of the oldest, and
        # each real client takes the slot of the oldest slow one left
        assert _real_requests(url) == [(200, "ok")] * (CLIENTS * REQUESTS)
        still_open = [c for c in slow.all if c not in slow.ended(slow.all)]
    assert still_open  # the real requests did not wait for the slow clients to go
    # those that gave up a slot: a trickler answered 503 if its request had begun
    assert {c.status for c in slow.ended(slow.trickling)} <= {503, None}
    assert {c.status for c in slow.ended(slow.idle)} <= {None}  # closed unanswered


def test_slow_and_idle_clients_are_cut_off_at_their_deadlines(serve: Serve) -> None:
    """With short deadlines every slow client is gone within them, and real requests
    are served meanwhile: tricklers answered 408 once their request deadline passed
    (never before), idle ones closed at the idle timeout (or either kind earlier, when
    a newer connection needed its slot)."""
    url, address = serve(
        Limits(max_connections=LIMIT, request_timeout_s=DEADLINE, keep_alive_s=IDLE)
    )
    with SlowClients(
        address, trickle=LIMIT, idle=LIMIT, request=RAW_REQUEST, interval=TRICKLE_EVERY
    ) as slow:
        assert _real_requests(url) == [(200, "ok")] * (CLIENTS * REQUESTS)
        wait_until(lambda: len(slow.ended(slow.all)) == len(slow.all), 15, "slow clients cut off")
    assert all(c.sent < len(RAW_REQUEST) for c in slow.trickling)  # none got a request in
    assert {c.status for c in slow.trickling} <= {408, 503, None}
    timed_out = [c for c in slow.trickling if c.status == 408]
    # 4 real connections took the slots of the 4 oldest of the 8 slow ones kept: the
    # newest tricklers stayed until their deadline
    assert timed_out, [(c.status, c.sent) for c in slow.trickling]
    for c in timed_out:
        assert c.ended is not None and c.started is not None
        assert c.ended - c.started >= DEADLINE  # counted from its first byte
    assert {c.status for c in slow.idle} <= {None}  # closed unanswered
