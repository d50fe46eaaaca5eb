"""What serving a 1x3x224x224 float32 image costs on top of a raw ONNX Runtime ``session.run``.

    python -m bench.serving [--seconds 20] [--min-turns 10] [--quick]

One process, one run, one model built in code (a small CNN: four strided 3x3
convolutions with ReLU, 32 to 256 channels, global average pool, a 256 -> 1000 linear
head; about 0.2 GMAC), and these paths:

- ``ort_session_run``: the baseline, a plain ``InferenceSession.run`` on the very session
  the agent's runner serves with (same model, same session, same thread pool);
- ``inproc``: the in-process Python API, ``ServedModels.use(name)`` + ``LoadedModel.infer``
  (exactly what ``Agent.infer`` does): input checks, metrics, the runner;
- ``rest_binary``: ``POST /v2/models/cnn/infer`` on the agent's local API over loopback
  with the binary tensor data extension both ways, from a keep-alive ``http.client``
  connection (stdlib); the client sends the JSON header and the array's memory as the
  body (no copy, no JSON of the tensor) and decodes the binary output with
  ``np.frombuffer``;
- ``rest_binary_httpx``: the same request from a keep-alive ``httpx.Client``;
- ``rest_json``: the same request with JSON tensors (body prepared once), keep-alive
  ``http.client``, output parsed with pydantic-core;
- ``grpc_triton``: the same inference over the agent's local API on gRPC
  (``agent.serving.grpc_server``, KServe v2 ``ModelInfer``) from the unmodified
  ``tritonclient.grpc`` client (``bench.oip_grpc_clients.TritonGrpc``);
- ``grpc_raw``: the same gRPC call from the bare generated stub, raw tensor bytes both
  ways (``bench.oip_grpc_clients.RawGrpc``): the gRPC path with the least client work;
- ``tcp_floor``: the floor of this box (``bench.tcp_floor``): the tensor's bytes over a
  raw loopback TCP connection into a fresh buffer in a server thread, the same
  ``session.run`` there, the output's bytes back; no HTTP, no OIP, no agent. What
  ``rest_binary`` adds beyond it is the cost of the protocol and the agent;
- ``http_floor``: the same ``http.client`` request as ``rest_binary`` to the barest
  HTTP/1.1 server that can answer it (``bench.tcp_floor.HttpFloor``: two byte searches
  for the head, no validation, no JSON, the same ``session.run``): the least any HTTP
  server can add for this client on this box.

Outputs of every path are checked equal to the baseline's before timing. Timing goes in
turns: each turn runs 25 calls in a row of every path in turn (2 of ``rest_json``, which
is slow), starting one path further each turn, so drift on a shared box hits every path
alike while each path is timed as a steady stream of calls (one call of each in turn
would time every call cold). Prints a table, then one JSON line last with
``rest_added_p50_ms`` (rest_binary p50 - baseline p50) and ``inproc_overhead_pct``
(inproc p50 over baseline p50, in %), against the goals 0.5 ms and 5 %,
``grpc_added_p50_ms`` (grpc_triton p50 - baseline p50) and ``tcp_floor_added_p50_ms``
(tcp_floor p50 - baseline p50). ``--quick``: 0.5 s, 2 turns.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from agent.runners import create_runner
from agent.serving import LoadedModel, ServedModels
from agent.serving.grpc_server import GrpcServer, InferenceService
from agent.serving.local_api import LocalApiServer, build_app
from bench.oip_grpc_clients import RawGrpc, TritonGrpc
from bench.options import parse_args
from bench.rest_paths import (
    NAME,
    RestClient,
    binary_header,
    build_cnn,
    cnn_answer_header,
    decode_binary,
    time_paths,
)
from bench.tcp_floor import HttpFloor, TcpFloor
from model_store import build_bundle, load_metadata

GOAL_REST_ADDED_MS = 0.5
GOAL_INPROC_PCT = 5.0


class _Clients:
    """The REST paths to the agent and to the HTTP floor (``bench.rest_paths``), and the
    binary one from ``httpx``."""

    def __init__(self, url: str, image: np.ndarray, floor: tuple[str, int]) -> None:
        self.image = image
        self.agent = RestClient(url, image)
        self.floor = RestClient(f"http://{floor[0]}:{floor[1]}", image)
        self.httpx = httpx.Client(base_url=url, timeout=30)

    def rest_binary_httpx(self) -> np.ndarray:
        header = binary_header(self.image)
        response = self.httpx.post(
            f"/v2/models/{NAME}/infer",
            content=header + self.image.tobytes(),
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
            },
        )
        response.raise_for_status()
        header_length = response.headers.get("Inference-Header-Content-Length")
        return decode_binary(header_length, response.content)

    def close(self) -> None:
        self.agent.close()
        self.floor.close()
        self.httpx.close()


def run(workdir: Path, seconds: float, min_turns: int = 10) -> dict[str, Any]:
    model_path = build_cnn(workdir / "src" / "model.onnx")
    bundle = workdir / "bundle"
    build_bundle(model_path, bundle, name=NAME, version="1.0.0")
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    feeds = {"image": image}

    runner = create_runner("onnxruntime")
    runner.load(bundle, load_metadata(bundle))
    session: ort.InferenceSession = runner._session  # type: ignore[attr-defined]
    reference = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(
        session.run(["logits"], feeds)[0], reference.run(["logits"], feeds)[0]
    )  # the runner's session is a plain session of the model file
    served = ServedModels()
    served.activate(LoadedModel(NAME, "1.0.0", "0" * 64, bundle, runner))

    def inproc() -> np.ndarray:
        with served.use(NAME) as model:
            return model.infer(feeds)["logits"]

    server = LocalApiServer(build_app(served, server_version="bench"), "127.0.0.1", 0)
    grpc_server = GrpcServer(InferenceService(served, server_version="bench"), "127.0.0.1", 0)

    def run_session(x: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"image": x})[0]

    http_floor = HttpFloor(run_session, image, answer_header=cnn_answer_header())
    clients = _Clients(server.start(), image, http_floor.address)
    floor = TcpFloor(run_session, image, 1000 * 4)
    grpc_address = grpc_server.start()
    grpc_triton, grpc_raw = TritonGrpc(grpc_address, NAME), RawGrpc(grpc_address, NAME)
    try:
        paths: dict[str, Callable[[], np.ndarray]] = {
            "ort_session_run": lambda: session.run(["logits"], feeds)[0],
            "inproc": inproc,
            "rest_binary": clients.agent.binary,
            "rest_binary_httpx": clients.rest_binary_httpx,
            "rest_json": clients.agent.json,
            "grpc_triton": lambda: grpc_triton.infer(feeds)["logits"],
            "grpc_raw": lambda: grpc_raw.infer(feeds)["logits"],
            "tcp_floor": lambda: floor.call(image).reshape(1, 1000),
            "http_floor": clients.floor.binary,
        }
        expected = paths["ort_session_run"]()
        for name, fn in paths.items():
            np.testing.assert_array_equal(fn(), expected, err_msg=name)
        results = time_paths(paths, seconds, {"rest_json": 2}, min_turns)
    finally:
        clients.close()
        grpc_triton.close()
        grpc_raw.close()
        grpc_server.stop()
        floor.close()
        http_floor.close()
        server.stop()
        served.clear()
    base = results["ort_session_run"]["p50_ms"]
    for figures in results.values():
        del figures["turns_ms"]  # the pooled p50s are this benchmark's figures
        figures["p50_added_ms"] = figures["p50_ms"] - base
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds in all")
    parser.add_argument("--min-turns", type=int, default=10, help="timed turns at least")
    args = parse_args(parser, argv, seconds=0.5, min_turns=2)
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp:
        paths = run(Path(tmp), args.seconds, args.min_turns)
    base = paths["ort_session_run"]["p50_ms"]
    rest_added = paths["rest_binary"]["p50_ms"] - base
    inproc_pct = (paths["inproc"]["p50_ms"] - base) / base * 100
    floor_added = paths["tcp_floor"]["p50_ms"] - base
    http_floor_added = paths["http_floor"]["p50_ms"] - base
    grpc_added = paths["grpc_triton"]["p50_ms"] - base
    print(f"{'path':<20} {'p50 ms':>9} {'p99 ms':>9} {'p50 added ms':>13} {'runs':>7}")
    for name, f in paths.items():
        print(
            f"{name:<20} {f['p50_ms']:>9.3f} {f['p99_ms']:>9.3f} "
            f"{f['p50_added_ms']:>13.3f} {f['runs']:>7}"
        )
    print(
        f"REST binary adds {rest_added:.3f} ms at p50 (goal <= {GOAL_REST_ADDED_MS}: "
        f"{'met' if rest_added <= GOAL_REST_ADDED_MS else 'NOT met'}); in-process API "
        f"{inproc_pct:+.1f}% (goal <= {GOAL_INPROC_PCT}%: "
        f"{'met' if inproc_pct <= GOAL_INPROC_PCT else 'NOT met'})\nfloors of this box: raw "
        f"TCP adds {floor_added:.3f} ms, the barest HTTP server {http_floor_added:.3f} ms; "
        f"the agent's REST path adds {rest_added - http_floor_added:.3f} ms beyond the latter"
        f"\ngRPC (tritonclient.grpc) adds {grpc_added:.3f} ms at p50, "
        f"{grpc_added - rest_added:+.3f} ms against REST binary"
    )
    report = {
        "onnxruntime": ort.__version__,
        "input": "float32 [1, 3, 224, 224]",
        "rest_added_p50_ms": rest_added,
        "inproc_overhead_pct": inproc_pct,
        "tcp_floor_added_p50_ms": floor_added,
        "http_floor_added_p50_ms": http_floor_added,
        "grpc_added_p50_ms": grpc_added,
        "goals": {"rest_added_p50_ms": GOAL_REST_ADDED_MS, "inproc_overhead_pct": GOAL_INPROC_PCT},
        "paths": paths,
        "quick": args.quick,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
