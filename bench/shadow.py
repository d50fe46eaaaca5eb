"""What a shadow period costs the serving path: p50/p99 of served requests with no
shadow, and with a shadow of the same size taking a sampled share of them.

    python -m bench.shadow [--clients 2] [--phase 2.0] [--rounds 3] [--sample 20 100] [--quick]

In process, as the agent serves: ``cnn-64px`` 1.0.0 loaded on ONNX Runtime in
``agent.serving.ServedModels``; ``--clients`` threads call it back to back through
``ServedModels.use`` + ``LoadedModel.infer`` (the path both local APIs take, where the
shadow's sampling and queueing run). Phases of ``--phase`` seconds alternate, ``--rounds``
times: no shadow, then for each ``--sample`` percentage a shadow (``cnn-64px`` 1.1.0, the
same model: every compared request agrees) attached with that share
(``agent.serving.shadow``: bounded queue, one worker at a lower priority). The baseline
and the shadow phases run in the same process on the same box, interleaved, so drift
hits both. Prints a table, then one JSON line last: ``p99_off_ms`` and, per sample,
``p99_ms``, ``added_p99_ms``, ``added_p99_pct``, ``compared``, ``dropped``,
``agreement_pct``. ``--quick``: 0.4 s phases, 1 round, 20% only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.serving import LoadedModel, ServedModels
from agent.serving.shadow import Shadow
from bench.models import catalogue
from bench.options import parse_args
from model_store import build_bundle, load_metadata
from protocol import ShadowSpec


def _runner(tmp: Path, source: Path, version: str) -> tuple[OnnxRuntimeRunner, Path]:
    bundle = tmp / f"bundle-{version}"
    build_bundle(source, bundle, name="cnn", version=version)
    runner = OnnxRuntimeRunner()
    runner.load(bundle, load_metadata(bundle))
    return runner, bundle


def _phase(
    models: ServedModels, feeds: Callable[[], dict[str, np.ndarray]], clients: int, seconds: float
) -> list[float]:
    """Latencies (ms) of requests served by ``clients`` threads for ``seconds``."""
    stop = threading.Event()
    found: list[list[float]] = [[] for _ in range(clients)]

    def client(index: int) -> None:
        inputs = feeds()
        while not stop.is_set():
            start = time.perf_counter()
            with models.use("cnn") as model:
                model.infer(inputs)
            found[index].append((time.perf_counter() - start) * 1000.0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    return [v for per in found for v in per]


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--phase", type=float, default=2.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=float, nargs="+", default=[20.0, 100.0])
    args = parse_args(parser, argv, phase=0.4, rounds=1, sample=[20.0])
    spec = next(m for m in catalogue() if m.name == "cnn-64px")
    latencies: dict[str, list[float]] = {"off": []}
    shadows: dict[str, list[Shadow]] = {}
    with tempfile.TemporaryDirectory(prefix="ef-bench-shadow-") as tmp:
        source = spec.build(Path(tmp) / "model" / "cnn.onnx")
        serving, bundle = _runner(Path(tmp), source, "1.0.0")
        candidate, _ = _runner(Path(tmp), source, "1.1.0")
        models = ServedModels()
        models.activate(LoadedModel("cnn", "1.0.0", "a" * 64, bundle, serving))
        _phase(models, spec.feeds, args.clients, 0.3)  # warm-up, not counted
        for _ in range(args.rounds):
            latencies["off"] += _phase(models, spec.feeds, args.clients, args.phase)
            for pct in args.sample:
                shadow = Shadow(
                    name="cnn",
                    version="1.1.0",
                    serving_version="1.0.0",
                    runner=candidate,
                    spec=ShadowSpec(duration_s=args.phase, sample=pct / 100),
                    started_at=datetime.now(UTC),
                )
                shadow.start()
                models.attach_shadow(shadow)
                served = _phase(models, spec.feeds, args.clients, args.phase)
                models.detach_shadow(shadow)
                shadow.stop()
                latencies.setdefault(f"{pct:g}%", []).extend(served)
                shadows.setdefault(f"{pct:g}%", []).append(shadow)
        models.clear()
        candidate.close()
    off_p99 = _p(latencies["off"], 99)
    print(
        f"serving path with and without a shadow: cnn-64px, {args.clients} in-process clients, "
        f"{args.rounds} x {args.phase:g} s phases"
    )
    print(
        f"{'shadow':<10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'compared':>9} {'dropped':>8}"
    )
    result: dict[str, object] = {"p99_off_ms": round(off_p99, 3)}
    for label, values in latencies.items():
        figures = [s.figures(elapsed_s=args.phase) for s in shadows.get(label, [])]
        compared = sum(f.compared for f in figures)
        dropped = sum(f.dropped for f in figures)
        print(
            f"{label:<10} {len(values):>8} {_p(values, 50):>8.3f} {_p(values, 99):>8.3f} "
            f"{compared:>9} {dropped:>8}"
        )
        if label == "off":
            continue
        p99 = _p(values, 99)
        agreeing = [f.agreement_pct for f in figures if f.agreement_pct is not None]
        result[f"sample_{label.rstrip('%')}"] = {
            "p99_ms": round(p99, 3),
            "added_p99_ms": round(p99 - off_p99, 3),
            "added_p99_pct": round((p99 / off_p99 - 1) * 100, 1) if off_p99 > 0 else None,
            "compared": compared,
            "dropped": dropped,
            "agreement_pct": min(agreeing) if agreeing else None,
        }
    result |= {"clients": args.clients, "quick": args.quick}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
