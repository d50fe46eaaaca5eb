"""OIP REST clients for ``bench.multimodel``, each run in a process of its own (a helper,
not a benchmark).

The clients of a device's local API are other programs (a camera reader, an app), not
threads of the agent: run as threads of the serving process, their own Python work
would take the server's GIL and be measured as the server's. So the benchmark starts
them with ``multiprocessing`` (spawn) and talks to them over pipes and events:

- ``time_light``: one client times the light model's requests one at a time;
- ``flood_heavy``: ``clients`` threads post to the heavy model as fast as it answers.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import numpy as np

#: the heavy model's request: one 224x224 RGB image as binary tensor data
HEAVY_IMAGE = np.full((1, 3, 224, 224), 0.1, np.float32)
#: the light model's request: one row of 64 features, as JSON
LIGHT_ROW = np.ones((1, 64), np.float32)


def json_body(name: str, array: np.ndarray) -> bytes:
    tensor = {"name": name, "shape": list(array.shape), "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": array.ravel().tolist()}]}).encode()


LIGHT_BODY = json_body("x", LIGHT_ROW)


def post(conn: http.client.HTTPConnection, model: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def post_image(conn: http.client.HTTPConnection, model: str, image: np.ndarray) -> int:
    """An image as binary tensor data (as a real camera client sends it): the status."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes},
                }
            ]
        }
    ).encode()
    conn.request(
        "POST",
        f"/v2/models/{model}/infer",
        body=header + image.tobytes(),
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    response = conn.getresponse()
    response.read()
    return response.status


def light_requests(
    port: int, model: str, seconds: float, rate: float = 0.0, least: int = 20
) -> list[float]:
    """Seconds each of the light model's requests took, one at a time for ``seconds``
    (at least ``least`` of them), ``rate`` a second (0: back to back); raises if one is
    not answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    interval = 1.0 / rate if rate > 0 else 0.0
    due = time.perf_counter()
    try:
        while time.monotonic() < deadline or len(latencies) < least:
            if interval:
                due += interval
                time.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            status, body = post(conn, model, LIGHT_BODY)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"light model answered {status}: {body[:200]!r}")
    finally:
        conn.close()
    return latencies


def time_light(
    port: int, model: str, seconds: float, rate: float, go: Event, out: Connection
) -> None:
    """Warm up, say ``"ready"``, wait for ``go``, then send (latencies, elapsed seconds)
    of ``seconds`` of light requests; an error is sent as its one-line text."""
    try:
        light_requests(port, model, 0.3)
        out.send("ready")
        go.wait()
        start = time.monotonic()
        latencies = light_requests(port, model, seconds, rate)
        out.send((latencies, time.monotonic() - start))
    except Exception as exc:
        out.send(f"{type(exc).__name__}: {exc}")


def flood_heavy(
    port: int, model: str, clients: int, counting: Event, stop: Event, out: Connection
) -> None:
    """``clients`` threads post images to ``model`` until ``stop``; sends the answers'
    statuses counted while ``counting`` was set ({status: count})."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while not stop.is_set():
                status = post_image(conn, model, HEAVY_IMAGE)
                if counting.is_set() and not stop.is_set():
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                if status == 503:  # refused at once: a real client backs off a little
                    time.sleep(0.005)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(60)
    out.send(statuses)
