"""What a shadow period costs the serving path: p50/p99 of served requests with no
shadow, and with a shadow of the same size taking a sampled share of them.

    python -m bench.shadow [--models cnn-64px mlp-1024] [--clients 1] [--phase 1.0]
                           [--rounds 6] [--sample 20 100] [--quick]

In process, as the agent serves: each of ``--models`` (``bench.models``: ``cnn-64px``
takes ~35 us a request, ``mlp-1024`` ~0.15 ms) as version 1.0.0 on ONNX Runtime in
``agent.serving.ServedModels``; ``--clients`` threads call it back to back through
``ServedModels.use`` + ``LoadedModel.infer`` (the path both local APIs take, where the
shadow's sampling runs). Phases of ``--phase`` seconds alternate, ``--rounds`` times:
no shadow, then for each ``--sample`` percentage a shadow (the same model as 1.1.0:
every compared request agrees) attached with that share (``agent.serving.shadow``),
loaded as the agent loads a shadow (``agent.serving.priority.at_idle_priority``). The
baseline and the shadow phases run in the same process, interleaved, so drift hits both
(short phases, many rounds: a burst of the box's noise spans several of them).

One client by default: the serving path then has a spare core, as it must for its p99
to be its own. Two clients on a 2-vCPU box plus ONNX Runtime's pool thread are three
runnable threads on two cores with no shadow at all: 1% of the requests then wait out
the scheduler's 3-4 ms slice, and the p99 lands on the edge of that mode (2.6-4.1 ms
without a shadow in consecutive runs), so what a shadow adds cannot be read from it.

The goal: a shadow adds at most ``GOAL_ADDED_P99_PCT`` to the serving p99, or
``GOAL_ADDED_P99_MS`` where that is larger, at every sample share, on every model.
Prints a table per model, then one JSON line last: per model ``p99_off_ms`` and, per
sample, ``p99_ms``, ``added_p99_ms``, ``added_p99_pct``, ``compared``, ``dropped``,
``agreement_pct``, ``shadow_p50_ms``; ``worst_added_p99_pct`` (of the samples past
``GOAL_ADDED_P99_MS``) and ``goal_met``. ``--quick``: 0.4 s phases, 1 round, 20% only.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agent.runners.plugins.onnxruntime import OnnxRuntimeRunner
from agent.serving import LoadedModel, ServedModels
from agent.serving.priority import at_idle_priority
from agent.serving.shadow import Shadow
from bench.models import BenchModel, catalogue
from bench.options import parse_args
from model_store import build_bundle, load_metadata
from protocol import ShadowSpec

#: the most a shadow may add to the serving p99: this share of it, or this many ms,
#: whichever is larger (on a 35 us model, one turn at the GIL that a serving thread
#: waits for while the worker's Python runs is ~0.05 ms, and the p99 itself is ~0.15)
GOAL_ADDED_P99_PCT = 10.0
GOAL_ADDED_P99_MS = 0.1


def _runner(tmp: Path, source: Path, version: str) -> tuple[OnnxRuntimeRunner, Path]:
    bundle = tmp / f"bundle-{version}"
    build_bundle(source, bundle, name="m", version=version)
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
            with models.use("m") as model:
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


def _measure(
    spec: BenchModel, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[Shadow]]]:
    """Served latencies per phase label (``off``, ``20%``...) and the shadows attached."""
    latencies: dict[str, list[float]] = {"off": []}
    shadows: dict[str, list[Shadow]] = {}
    with tempfile.TemporaryDirectory(prefix="ef-bench-shadow-") as tmp:
        source = spec.build(Path(tmp) / "model" / "m.onnx")
        serving, bundle = _runner(Path(tmp), source, "1.0.0")
        # loaded as the agent loads a shadow: its runtime's threads at the lowest priority
        candidate, _ = at_idle_priority(
            lambda: _runner(Path(tmp), source, "1.1.0"), what="bench shadow"
        )
        models = ServedModels()
        models.activate(LoadedModel("m", "1.0.0", "a" * 64, bundle, serving))
        try:
            _phase(models, spec.feeds, args.clients, 0.3)  # warm-up, not counted
            for _ in range(args.rounds):
                latencies["off"] += _phase(models, spec.feeds, args.clients, args.phase)
                for pct in args.sample:
                    shadow = Shadow(
                        name="m",
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
        finally:  # the sessions are closed, whatever failed
            models.clear()
            candidate.close()
    return latencies, shadows


def _report(
    name: str,
    latencies: dict[str, list[float]],
    shadows: dict[str, list[Shadow]],
    phase: float,
) -> dict[str, object]:
    """Print one model's table; its figures for the JSON line."""
    off_p99 = _p(latencies["off"], 99)
    print(
        f"{name}: {'shadow':<8} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'added':>8} "
        f"{'compared':>9} {'dropped':>8} {'shadow p50':>10}"
    )
    result: dict[str, object] = {
        "p99_off_ms": round(off_p99, 3) if math.isfinite(off_p99) else None
    }
    for label, values in latencies.items():
        figures = [s.figures(elapsed_s=phase) for s in shadows.get(label, [])]
        compared = sum(f.compared for f in figures)
        dropped = sum(f.dropped for f in figures)
        p99 = _p(values, 99)
        measured = math.isfinite(p99) and math.isfinite(off_p99) and off_p99 > 0
        added = round((p99 / off_p99 - 1) * 100, 1) if measured else None
        p50s = [f.shadow_p50_ms for f in figures if f.shadow_p50_ms is not None]
        shadow_p50 = round(float(np.median(p50s)), 4) if p50s else None
        shown = "" if label == "off" else "-" if added is None else f"{added:+.1f}%"
        print(
            f"{'':{len(name) + 2}}{label:<8} {len(values):>8} {_p(values, 50):>8.3f} "
            f"{p99:>8.3f} {shown:>8} "
            f"{compared if label != 'off' else '-':>9} {dropped if label != 'off' else '-':>8} "
            f"{'-' if shadow_p50 is None else f'{shadow_p50:.3f}':>10}"
        )
        if label == "off":
            continue
        agreeing = [f.agreement_pct for f in figures if f.agreement_pct is not None]
        result[f"sample_{label.rstrip('%')}"] = {
            "p99_ms": round(p99, 3) if math.isfinite(p99) else None,
            "added_p99_ms": round(p99 - off_p99, 3) if measured else None,
            "added_p99_pct": added,
            "compared": compared,
            "dropped": dropped,
            "agreement_pct": min(agreeing) if agreeing else None,
            "shadow_p50_ms": shadow_p50,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow")
    known = {m.name: m for m in catalogue()}
    parser.add_argument(
        "--models", nargs="+", choices=known, default=["cnn-64px", "mlp-1024"], metavar="NAME"
    )
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--phase", type=float, default=1.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sample", type=float, nargs="+", default=[20.0, 100.0])
    args = parse_args(parser, argv, phase=0.4, rounds=1, sample=[20.0])
    print(
        f"serving path with and without a shadow: {args.clients} in-process clients, "
        f"{args.rounds} x {args.phase:g} s phases"
    )
    result: dict[str, object] = {}
    samples: list[dict[str, float | None]] = []
    for name in args.models:
        figures = _report(name, *_measure(known[name], args), args.phase)
        result[name] = figures
        samples += [v for v in figures.values() if isinstance(v, dict)]
    past_floor = [
        pct
        for v in samples
        if (ms := v["added_p99_ms"]) is not None
        and ms > GOAL_ADDED_P99_MS
        and (pct := v["added_p99_pct"]) is not None
    ]
    worst = max(past_floor) if past_floor else None
    # a phase that served nothing measured nothing: not a goal met
    complete = bool(samples) and all(v["added_p99_ms"] is not None for v in samples)
    met = complete and (worst is None or worst <= GOAL_ADDED_P99_PCT)
    print(
        f"goal: a shadow adds <= {GOAL_ADDED_P99_PCT:g}% (or {GOAL_ADDED_P99_MS:g} ms) to the "
        f"serving p99: {'met' if met else 'NOT met'}"
        + (f" (worst past {GOAL_ADDED_P99_MS:g} ms: {worst:+.1f}%)" if worst is not None else "")
    )
    result |= {
        "worst_added_p99_pct": worst,
        "goal_met": met,
        "clients": args.clients,
        "quick": args.quick,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
