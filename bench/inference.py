"""What the agent's serving path costs on top of a raw ONNX Runtime ``session.run``.

    python -m bench.inference [--seconds 1.0] [--quick]

For each model (built in code) and in the same run: the baseline (a plain
``onnxruntime.InferenceSession.run``), the agent's ONNX Runtime runner plugin
(``agent_runner``), the in-process Python API as ``Agent.infer`` runs it
(``agent_in_process``: ``ServedModels.infer``, i.e. ``use`` + ``LoadedModel.infer``, with
its metrics),
these three timed alternately in blocks of ``BLOCK`` calls, and the agent's Open Inference
Protocol REST endpoint over loopback with JSON tensors (a keep-alive httpx client).
Goal: ``agent_in_process`` p50 <= 1.10x the baseline's on every model (a line says
whether it is met; the exit code stays 0). Prints a table, then one JSON line last.
``--quick``: every model and path, 0.05 s each (at least 50 calls).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort

from agent.runners import create_runner
from agent.serving import LoadedModel, ServedModels, oip
from agent.serving.local_api import LocalApiServer, build_app
from bench.models import BenchModel, catalogue
from bench.options import parse_args
from model_store import build_bundle, load_metadata

#: calls per block when paths are timed alternately
BLOCK = 50
#: goal: the in-process API (``Agent.infer``: ServedModels.use + LoadedModel.infer) adds
#: at most 10% to a plain ``session.run``, on every model
GOAL_IN_PROCESS = 1.10


def _time(fn: Callable[[], object], seconds: float) -> dict[str, float]:
    for _ in range(20):  # warm-up
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 50:
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    arr = np.asarray(samples)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "runs": len(samples),
    }


def _time_interleaved(
    calls: dict[str, Callable[[], object]], seconds: float
) -> dict[str, dict[str, float]]:
    """Like ``_time`` for several calls at once, in alternating blocks of ``BLOCK`` calls
    (a burst of load on the shared box hits all alike): p50/p99 over single calls."""
    for fn in calls.values():
        for _ in range(20):  # warm-up
            fn()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    deadline = time.perf_counter() + seconds * len(calls)
    while time.perf_counter() < deadline or min(map(len, samples.values())) < 50:
        for key, fn in calls.items():
            out = samples[key]
            for _ in range(BLOCK):
                start = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - start) / 1e6)
    return {
        key: {
            "p50_ms": float(np.percentile(s, 50)),
            "p99_ms": float(np.percentile(s, 99)),
            "runs": len(s),
        }
        for key, s in samples.items()
    }


def _oip_body(feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": k,
                "shape": list(v.shape),
                "datatype": oip.oip_datatype(v.dtype),
                "data": v.ravel().tolist(),
            }
            for k, v in feeds.items()
        ]
    }


def bench_model(spec: BenchModel, workdir: Path, seconds: float) -> dict[str, Any]:
    model_path = spec.build(workdir / spec.name / "model.onnx")
    bundle = workdir / spec.name / "bundle"
    build_bundle(model_path, bundle, name=spec.name, version="1.0.0")
    feeds = spec.feeds()

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    runner = create_runner("onnxruntime")
    runner.load(bundle, load_metadata(bundle))
    expected = session.run(None, feeds)
    got = runner.infer(feeds)
    for want, have in zip(expected, got.values(), strict=True):
        np.testing.assert_array_equal(want, have)

    served = ServedModels()
    served.activate(
        LoadedModel(
            name=spec.name,
            version="1.0.0",
            bundle_digest="0" * 64,
            bundle_dir=bundle,
            runner=runner,
        )
    )
    server = LocalApiServer(build_app(served, server_version="bench"), "127.0.0.1", 0)
    url = server.start()
    body = json.dumps(_oip_body(feeds)).encode()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:

            def rest() -> None:
                response = http.post(
                    f"/v2/models/{spec.name}/infer",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()

            def in_process() -> None:
                served.infer(spec.name, feeds)  # what Agent.infer does

            calls = {
                "ort_session_run": lambda: session.run(None, feeds),
                "agent_runner": lambda: runner.infer(feeds),
                "agent_in_process": in_process,
            }
            results = _time_interleaved(calls, seconds)
            results["agent_oip_rest_json"] = _time(rest, seconds)
    finally:
        server.stop()
        served.clear()
    base = results["ort_session_run"]["p50_ms"]
    for figures in results.values():
        figures["p50_over_baseline"] = figures["p50_ms"] / base
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per path")
    args = parse_args(parser, argv, seconds=0.05)
    report: dict[str, Any] = {"onnxruntime": ort.__version__, "models": {}, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp:
        for spec in catalogue():
            report["models"][spec.name] = bench_model(spec, Path(tmp), args.seconds)
    print(f"{'model':<18} {'path':<22} {'p50 ms':>9} {'p99 ms':>9} {'x baseline':>11}")
    for name, paths in report["models"].items():
        for path, f in paths.items():
            print(
                f"{name:<18} {path:<22} {f['p50_ms']:>9.3f} {f['p99_ms']:>9.3f} "
                f"{f['p50_over_baseline']:>11.2f}"
            )
    worst = max(p["agent_in_process"]["p50_over_baseline"] for p in report["models"].values())
    report["in_process_over_baseline_max"] = round(worst, 4)
    report["goal_in_process"] = GOAL_IN_PROCESS
    report["goal_met"] = worst <= GOAL_IN_PROCESS
    verdict = "met" if report["goal_met"] else "NOT met"
    print(
        f"goal {verdict}: in-process p50 <= {GOAL_IN_PROCESS:.2f}x session.run (worst {worst:.3f})"
    )
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
