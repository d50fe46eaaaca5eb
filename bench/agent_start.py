"""Agent start -> serving a cached model, measured from the process spawn.

    python -m bench.agent_start [--runs 5] [--quick]

A real one-device fleet (``bench.fleet``: control plane with its embedded broker, one
``edge-agent run`` process). The model (``cnn-64px`` from ``bench.models``) is pushed once
and activated; then the agent is stopped and started ``--runs`` times: each start is
timed from just before the spawn until its local API answers a real inference request
(the model is restored from the cache: re-verified, loaded and warmed up; the broker is
up but not waited for). Baseline in the same run: a fresh Python process that imports
onnxruntime, loads the same model and runs it once (the floor any Python agent pays).
Prints a table, then one JSON line with ``start_to_serving_s`` (the median) last.
``--quick``: 2 starts and 2 baseline runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.fleet import BenchFleet, oip_json_body
from bench.models import catalogue
from bench.options import parse_args

GOAL_S = 1.5


def _baseline(model: Path) -> float:
    code = (
        "import numpy as np, onnxruntime as ort\n"
        f"s = ort.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider'])\n"
        "i = s.get_inputs()[0]\n"
        "s.run(None, {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape],"
        " dtype=np.float32)})\n"
    )
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_start")
    parser.add_argument("--runs", type=int, default=5)
    args = parse_args(parser, argv, runs=2)
    spec = next(m for m in catalogue() if m.name == "cnn-64px")
    with (
        tempfile.TemporaryDirectory(prefix="ef-bench-start-") as tmp,
        BenchFleet(Path(tmp)) as fleet,
    ):
        model = spec.build(Path(tmp) / "model" / "cnn.onnx")
        body = oip_json_body(spec.feeds())
        fleet.serve(model, name="cnn", version="1.0.0")
        fleet.stop_agent()
        starts: list[float] = []
        with httpx.Client(timeout=5) as http:
            for _ in range(args.runs):
                started = fleet.start_agent()
                deadline = started + 60
                while not fleet.infer_ok("cnn", body, http):
                    if time.monotonic() > deadline or fleet.agent is None:
                        raise SystemExit("the agent did not serve within 60 s")
                    fleet.agent.check_alive()
                    time.sleep(0.005)
                starts.append(time.monotonic() - started)
                fleet.stop_agent()
        baselines = [_baseline(model) for _ in range(args.runs)]
    median, base = statistics.median(starts), statistics.median(baselines)
    print(f"agent start -> serving a cached model ({args.runs} runs, cnn-64px)")
    print(f"{'path':<44} {'median s':>9} {'min s':>7} {'max s':>7}")
    print(
        f"{'edge-agent run -> first inference answered':<44} {median:>9.3f} "
        f"{min(starts):>7.3f} {max(starts):>7.3f}"
    )
    print(
        f"{'baseline: python + onnxruntime load + run':<44} {base:>9.3f} "
        f"{min(baselines):>7.3f} {max(baselines):>7.3f}"
    )
    print(f"goal <= {GOAL_S} s: {'met' if median <= GOAL_S else 'NOT met'}")
    print(
        json.dumps(
            {
                "start_to_serving_s": round(median, 4),
                "start_to_serving_min_s": round(min(starts), 4),
                "baseline_ort_process_s": round(base, 4),
                "runs": args.runs,
                "quick": args.quick,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
