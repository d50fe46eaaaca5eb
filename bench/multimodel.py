"""Fair share of one device between two models: does a flooded heavy model starve a light one?

Serves a light model (a small MLP) and a heavy one (a convolution net on 224x224), both
built in code, through the agent's real local HTTP API (Open Inference Protocol, JSON),
and times the light model's requests from one client, one at a time, in three phases
run back to back in this one process:

- ``alone``: only the light model is requested;
- ``nopolicy``: ``--heavy-clients`` clients flood the heavy model as fast as they can;
  the fair-share policy is off (every backend on every core, no concurrency limit:
  how the agent served before ``agent.serving.fairshare``);
- ``policy``: the same flood with the policy on: the light model has priority ``high``,
  the heavy one ``normal``; threads and concurrency from ``fairshare.plan`` (the heavy
  one's excess requests wait in its short queue or are refused with 503).

Prints a table, then one JSON line last with ``light_p99_policy_over_alone`` and
``light_p99_nopolicy_over_alone`` (goal: the former <= 1.5), the light and heavy request
counts and the heavy model's throughput per phase. ``--quick``: 0.5 s per phase.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.runners import create_runner_for
from agent.runners.spec import CandidateSpec
from agent.serving import LoadedModel, ServedModels
from agent.serving.fairshare import Want
from agent.serving.local_api import LocalApiServer, build_app
from bench.models import conv_net
from bench.options import parse_args
from model_store import build_bundle, load_metadata
from protocol import Priority

GOAL = 1.5
LIGHT, HEAVY = "light", "heavy"
_ORT_CPU = CandidateSpec("onnxruntime", "CPUExecutionProvider", "f32")


def build_light(path: Path) -> Path:
    """A small MLP: x float32 [batch, 64] -> y float32 [batch, 8]."""
    from bench.models import _mlp

    return _mlp(path, [64, 128, 8])


def build_heavy(path: Path) -> Path:
    """A convolution net: image float32 [batch, 3, 224, 224] -> logits [batch, 10]."""
    return conv_net(path, channels=[32, 64, 128], size=224, classes=10, seed=3, name="heavy")


def bundle(workdir: Path, name: str, build: Any) -> Path:
    out = workdir / name / "bundle"
    build_bundle(build(workdir / name / "src" / "model.onnx"), out, name=name, version="1.0")
    return out


def serve(
    models: ServedModels, bundles: dict[str, Path], wants: dict[str, Want]
) -> dict[str, LoadedModel]:
    """Load and serve each bundle on ONNX Runtime CPU, as the agent does: with the
    policy on, each backend gets its fair share's threads (``ServedModels.share_for``),
    planned for the whole set in ``wants`` (the models named there that are loaded
    later count already)."""
    served: dict[str, LoadedModel] = {}
    for name, out in bundles.items():
        want = wants.get(name, Want())
        share = models.share_for(name, want, wants)  # the whole set's plan
        spec = _ORT_CPU if share is None else CandidateSpec(*_spec_args(share.threads))
        runner = create_runner_for(spec)
        runner.load(out, load_metadata(out))
        model = LoadedModel(name, "1.0", "a" * 64, out, runner, want=want, share=share)
        models.activate(model)
        served[name] = model
    return served


def _spec_args(threads: int) -> tuple[str, str, str, str, int]:
    return (_ORT_CPU.runtime, _ORT_CPU.device, _ORT_CPU.precision, _ORT_CPU.hint, threads)


def json_body(name: str, array: np.ndarray) -> bytes:
    tensor = {"name": name, "shape": list(array.shape), "datatype": "FP32"}
    return json.dumps({"inputs": [{**tensor, "data": array.ravel().tolist()}]}).encode()


LIGHT_BODY = json_body("x", np.ones((1, 64), np.float32))
HEAVY_IMAGE = np.full((1, 3, 224, 224), 0.1, np.float32)


def post(conn: http.client.HTTPConnection, model: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def post_image(conn: http.client.HTTPConnection, model: str, image: np.ndarray) -> int:
    """The heavy request: its image as binary tensor data (as a real camera client sends)."""
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


@dataclass
class Flood:
    """``clients`` threads posting to the heavy model until ``stop``: answers by status.

    Threads of this process, as the light client is: their own Python work takes the
    same GIL as the server's (client processes were tried: on a 2-core box their start
    and their own CPU then dominate what is measured)."""

    port: int
    clients: int

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            while not self.stop.is_set():
                status = post_image(conn, HEAVY, HEAVY_IMAGE)
                with self._lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 503:  # refused at once: a real client backs off a little
                    time.sleep(0.005)
        finally:
            conn.close()

    def join(self) -> dict[int, int]:
        self.stop.set()
        for t in self._threads:
            t.join(60)
        return dict(self.statuses)


def _light(port: int, seconds: float) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline or len(latencies) < 20:
            start = time.perf_counter()
            status, body = post(conn, LIGHT, LIGHT_BODY)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"light model answered {status}: {body[:200]!r}")
    finally:
        conn.close()
    return latencies


def phase(workdir: Path, *, policy: bool, flood: int, seconds: float) -> dict[str, Any]:
    models = ServedModels()
    models.fair_share = policy
    bundles = {LIGHT: workdir / LIGHT / "bundle", HEAVY: workdir / HEAVY / "bundle"}
    wants = {LIGHT: Want(Priority.HIGH), HEAVY: Want(Priority.NORMAL)}
    served = serve(models, bundles, wants)
    server = LocalApiServer(build_app(models, server_version="bench"), "127.0.0.1", 0)
    url = server.start()
    port = int(url.rsplit(":", 1)[1])
    try:
        _light(port, min(0.3, seconds))  # warm-up
        heavy = Flood(port, flood) if flood else None
        if heavy is not None:
            heavy.start()
            time.sleep(min(0.5, seconds))  # let the flood fill the heavy model's queue
        start = time.monotonic()
        latencies = _light(port, seconds)
        elapsed = time.monotonic() - start
        statuses = heavy.join() if heavy is not None else {}
        shares = {
            n: None if m.share is None else [m.share.threads, m.share.concurrency]
            for n, m in served.items()
        }
    finally:
        server.stop(10)
        models.clear()
    ms = np.asarray(latencies) * 1000
    return {
        "light_requests": len(latencies),
        "light_p50_ms": float(np.percentile(ms, 50)),
        "light_p99_ms": float(np.percentile(ms, 99)),
        "heavy_ok": statuses.get(200, 0),
        "heavy_refused": statuses.get(503, 0),
        "heavy_ok_per_s": statuses.get(200, 0) / elapsed,
        "shares": shares,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per phase")
    parser.add_argument("--heavy-clients", type=int, default=4, help="clients flooding heavy")
    args = parse_args(parser, argv, seconds=0.5)
    flood = args.heavy_clients
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp:
        workdir = Path(tmp)
        bundle(workdir, LIGHT, build_light)
        bundle(workdir, HEAVY, build_heavy)
        phases = {
            "alone": phase(workdir, policy=True, flood=0, seconds=args.seconds),
            "nopolicy": phase(workdir, policy=False, flood=flood, seconds=args.seconds),
            "policy": phase(workdir, policy=True, flood=flood, seconds=args.seconds),
        }
    alone = phases["alone"]["light_p99_ms"]
    policy_ratio = phases["policy"]["light_p99_ms"] / alone
    nopolicy_ratio = phases["nopolicy"]["light_p99_ms"] / alone
    head = ("phase", "light p50", "light p99", "light n", "heavy/s", "503")
    print("{:<10} {:>10} {:>10} {:>8} {:>8} {:>6}".format(*head))
    for name, f in phases.items():
        print(
            f"{name:<10} {f['light_p50_ms']:>10.3f} {f['light_p99_ms']:>10.3f} "
            f"{f['light_requests']:>8} {f['heavy_ok_per_s']:>8.1f} {f['heavy_refused']:>6}"
        )
    print(
        f"light p99 under the heavy flood: {policy_ratio:.2f}x alone with the policy (goal <= "
        f"{GOAL}: {'met' if policy_ratio <= GOAL else 'NOT met'}), {nopolicy_ratio:.2f}x without"
    )
    report = {
        "light_p99_policy_over_alone": policy_ratio,
        "light_p99_nopolicy_over_alone": nopolicy_ratio,
        "goal": GOAL,
        "heavy_clients": args.heavy_clients,
        "phases": phases,
        "quick": args.quick,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
