"""The OIP REST request of ``bench.serving`` and ``bench.peers``, and their timing in turns
(a helper, not a benchmark).

Both benchmarks time the same request: one 1x3x224x224 float32 image for the CNN of
``build_cnn`` (input ``image``, output ``logits`` [1, 1000]), posted to
``/v2/models/cnn/infer`` from a keep-alive ``http.client`` connection (stdlib), either

- ``binary``: the binary tensor data extension both ways: the JSON header and the
  array's memory as the body (no copy, no JSON of the tensor), the output decoded with
  ``np.frombuffer``; or
- ``json``: JSON tensors (the body prepared once, flat ``data``), the output parsed with
  pydantic-core.

``floor``: the same binary request to ``bench.tcp_floor.HttpFloor``, which answers the
output's raw bytes.

``time_paths`` times paths in turns: each turn runs a block of calls of every path in
turn (``BLOCK`` unless told fewer for a slow path), starting one path further each turn,
so drift on a shared box hits every path alike while each path is timed as a steady
stream of calls (one call of each in turn would time every call cold).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pydantic_core

from bench.models import conv_net

NAME = "cnn"
#: calls of one path in a row: a steady stream from one client, as a real one sends
BLOCK = 25
#: warm-up calls of a path before timing (fewer for a path timed in short blocks)
WARMUP = 20


def build_cnn(path: Path) -> Path:
    """image float32 [batch, 3, 224, 224] -> logits float32 [batch, 1000]."""
    return conv_net(
        path, channels=[32, 64, 128, 256], size=224, classes=1000, seed=7, name="cnn224"
    )


def binary_header(image: np.ndarray) -> bytes:
    request = {
        "inputs": [
            {
                "name": "image",
                "shape": list(image.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": image.nbytes},
            }
        ],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }
    return json.dumps(request).encode()


def cnn_answer_header() -> bytes:
    """The OIP JSON header of the agent's binary answer for the CNN served as 1.0.0 (what
    the benchmarks serve), compact as the agent writes it."""
    answer = {
        "model_name": NAME,
        "model_version": "1.0.0",
        "outputs": [
            {
                "name": "logits",
                "datatype": "FP32",
                "shape": [1, 1000],
                "parameters": {"binary_data_size": 4 * 1000},
            }
        ],
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def decode_binary(header_length: str | None, body: bytes) -> np.ndarray:
    n = int(header_length or 0)
    meta = json.loads(body[:n])["outputs"][0]
    return np.frombuffer(body, np.float32, offset=n).reshape(meta["shape"])


def json_body(image: np.ndarray) -> bytes:
    tensor = {"name": "image", "shape": list(image.shape), "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": image.ravel().tolist()}]}).encode()


class RestClient:
    """One keep-alive connection to ``url``; each call is one full round trip."""

    def __init__(self, url: str, image: np.ndarray, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.image = image
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        self.path = f"/v2/models/{NAME}/infer"
        self.json_body = json_body(image)

    def binary(self) -> np.ndarray:
        response = self._post_binary()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return decode_binary(response.getheader("Inference-Header-Content-Length"), body)

    def _post_binary(self) -> http.client.HTTPResponse:
        header = binary_header(self.image)
        body = [header, self.image.reshape(-1).view(np.uint8).data]
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(header) + self.image.nbytes),
            "Inference-Header-Content-Length": str(len(header)),
        }
        return self._post(body, headers)

    def _post(self, body: Any, headers: dict[str, str]) -> http.client.HTTPResponse:
        """POST on the kept-alive connection; once more on a new one if the server had
        closed it while idle (uvicorn does after 5 s, as a real client would see)."""
        try:
            self.conn.request("POST", self.path, body=body, headers=headers)
            return self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.conn.close()
            self.conn.request("POST", self.path, body=body, headers=headers)
            return self.conn.getresponse()

    def json(self) -> np.ndarray:
        response = self._post(self.json_body, {"Content-Type": "application/json"})
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        out = pydantic_core.from_json(body)["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

    def close(self) -> None:
        self.conn.close()


def time_paths(
    paths: Mapping[str, Callable[[], object]],
    seconds: float,
    blocks: Mapping[str, int],
    turns: int,
) -> dict[str, Any]:
    """p50/p99 (ms) over ``seconds`` and ``turns`` turns at least; each turn runs a block
    of calls of every path in turn (``blocks[name]`` calls, default ``BLOCK``), starting
    one path further each turn. ``turns_ms``: each turn's block median, in turn order
    (``paired_difference`` compares two paths turn by turn)."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    medians: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for name, fn in paths.items():
        for _ in range(min(WARMUP, 2 * blocks.get(name, BLOCK))):
            fn()
    deadline = time.perf_counter() + seconds
    turn = 0
    while time.perf_counter() < deadline or turn < turns:
        first = turn % len(names)
        for name in names[first:] + names[:first]:
            fn, out = paths[name], samples[name]
            for _ in range(blocks.get(name, BLOCK)):
                start = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - start) / 1e6)
            medians[name].append(float(np.median(out[-blocks.get(name, BLOCK) :])))
        turn += 1
    return {
        name: {
            "p50_ms": float(np.percentile(s, 50)),
            "p99_ms": float(np.percentile(s, 99)),
            "runs": len(s),
            "turns_ms": medians[name],
        }
        for name, s in samples.items()
    }


def paired_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """The median over turns of path ``a``'s block median minus ``b``'s in the same turn
    (``time_paths``' ``turns_ms``). On a shared 2-vCPU box the model's run swings by tens
    of microseconds between spells of a second or so; a pooled p50 moves with how many of
    a path's blocks a spell hit, a difference within one turn does not."""
    return float(np.median(np.subtract(a, b)))
