"""Fair share of one device between two models: does a flooded heavy model starve a light one?

Serves a light model (a small MLP) and a heavy one (a convolution net on 224x224 images,
the size of a small detector), both built in code, through the agent's real local HTTP
API (Open Inference Protocol) in this process, as the agent serves them. Its clients
are other processes (``bench.oip_clients``), as on a device: one times the light
model's requests one at a time (JSON), ``--heavy-clients`` threads of another flood the
heavy one with images (binary tensor data) as fast as it answers. Three phases:

- ``alone``: only the light model is requested;
- ``nopolicy``: the heavy flood with the fair-share policy off (every backend at its
  runtime's default threads, no concurrency limit: how the agent served before
  ``agent.serving.fairshare``);
- ``policy``: the same flood with the policy on: the light model has priority ``high``,
  the heavy one ``normal``; threads and concurrency from ``fairshare.plan`` (the heavy
  one's excess requests wait in its short queue or are refused with 503).

The phases run ``--rounds`` times, interleaved (alone, nopolicy, policy, alone, ...),
and each phase's latencies are pooled over its rounds, so that a drift of the shared
box weighs on the three alike. ``--heavy small`` swaps the heavy model for a 1.5 ms
one whose 600 KB request costs the server about as much as its inference (the
transport, not the model, is then what floods the device).

Prints a table, then one JSON line last with ``light_p99_policy_over_alone`` and
``light_p99_nopolicy_over_alone`` (goal: the former <= 1.5), the light and heavy
request counts, the heavy model's throughput and time per inference per phase.
``--quick``: one round of 0.5 s per phase.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.runners import create_runner_for
from agent.runners.spec import CandidateSpec
from agent.serving import LoadedModel, ServedModels
from agent.serving.fairshare import Want
from agent.serving.local_api import LocalApiServer, build_app
from agent.serving.placement import confined
from bench.models import conv_net
from bench.oip_clients import HEAVY_IMAGE, flood_heavy, time_light
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
    """A convolution net the size of a small detector (five strided 3x3 convolutions,
    64 to 512 channels, about 0.8 GMAC; 9 ms on one core of the 2-vCPU Xeon of
    ``docs/benchmarks.md``): image float32 [batch, 3, 224, 224] -> logits [batch, 10]."""
    return conv_net(
        path, channels=[64, 128, 256, 512, 512], size=224, classes=10, seed=3, name="heavy"
    )


def build_small_heavy(path: Path) -> Path:
    """``--heavy small``: three strided convolutions (32 to 128 channels, 1.5 ms on one
    core there), same input and output as ``build_heavy``."""
    return conv_net(path, channels=[32, 64, 128], size=224, classes=10, seed=3, name="heavy")


HEAVY_MODELS = {"detector": build_heavy, "small": build_small_heavy}


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
        # loaded on its share's cores, as the agent loads it: its backend's threads inherit them
        with confined(share.cores if share is not None else None):
            runner.load(out, load_metadata(out))
        model = LoadedModel(name, "1.0", "a" * 64, out, runner, want=want, share=share)
        models.activate(model)
        served[name] = model
    return served


def _spec_args(threads: int) -> tuple[str, str, str, str, int]:
    return (_ORT_CPU.runtime, _ORT_CPU.device, _ORT_CPU.precision, _ORT_CPU.hint, threads)


@dataclass
class Phase:
    """One phase's figures, pooled over its rounds."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    heavy_ms: list[float] = field(default_factory=list)
    shares: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        ms = np.asarray(self.latencies) * 1000
        ok = self.statuses.get(200, 0)
        return {
            "light_requests": len(self.latencies),
            "light_p50_ms": float(np.percentile(ms, 50)),
            "light_p99_ms": float(np.percentile(ms, 99)),
            "heavy_ok": ok,
            "heavy_refused": self.statuses.get(503, 0),
            "heavy_ok_per_s": ok / self.seconds if self.seconds else 0.0,
            "heavy_ms_per_inference": float(np.median(self.heavy_ms)) if self.heavy_ms else None,
            "shares": self.shares,
        }


def _heavy_ms(model: LoadedModel) -> float:
    """Milliseconds one heavy inference takes on its backend, nothing else running."""
    inputs = {"image": HEAVY_IMAGE}
    model.runner.infer(inputs)
    start = time.perf_counter()
    for _ in range(5):
        model.runner.infer(inputs)
    return (time.perf_counter() - start) / 5 * 1000


def _receive(conn: Any, what: str, process: Any) -> Any:
    """What the ``what`` client sends next; an error if it fails, ends or takes 120 s."""
    deadline = time.monotonic() + 120
    while not conn.poll(0.2):
        if not process.is_alive():
            raise RuntimeError(f"the {what} client ended (exit code {process.exitcode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} client did not answer within 120 s")
    got = conn.recv()
    if isinstance(got, str) and got != "ready":
        raise RuntimeError(f"the {what} client failed: {got}")
    return got


def run_phase(
    into: Phase,
    bundles: dict[str, Path],
    *,
    policy: bool,
    flood: int,
    seconds: float,
    rate: float,
) -> None:
    """Serve both models, time the light one (flooding the heavy one if ``flood``) and
    add what was seen to ``into``."""
    ctx = multiprocessing.get_context("spawn")
    models = ServedModels()
    models.fair_share = policy
    wants = {LIGHT: Want(Priority.HIGH), HEAVY: Want(Priority.NORMAL)}
    served = serve(models, bundles, wants)
    into.shares = {
        n: None if m.share is None else [m.share.threads, m.share.concurrency]
        for n, m in served.items()
    }
    if flood:
        into.heavy_ms.append(_heavy_ms(served[HEAVY]))
    server = LocalApiServer(build_app(models, server_version="bench"), "127.0.0.1", 0)
    port = int(server.start().rsplit(":", 1)[1])
    go, stop, counting = ctx.Event(), ctx.Event(), ctx.Event()
    light_in, light_out = ctx.Pipe(duplex=False)
    heavy_in, heavy_out = ctx.Pipe(duplex=False)
    light = ctx.Process(target=time_light, args=(port, LIGHT, seconds, rate, go, light_out))
    heavy = ctx.Process(target=flood_heavy, args=(port, HEAVY, flood, counting, stop, heavy_out))
    try:
        light.start()
        _receive(light_in, "light", light)
        if flood:
            heavy.start()
            time.sleep(1.0)  # the flood's clients start and fill the heavy model's queue
        counting.set()
        go.set()
        latencies, elapsed = _receive(light_in, "light", light)
        counting.clear()
        stop.set()
        statuses = _receive(heavy_in, "heavy", heavy) if flood else {}
    finally:
        stop.set()
        for process in (light, heavy):
            if process.pid is not None:
                process.join(60)
                if process.is_alive():
                    process.kill()
        server.stop(10)
        models.clear()
    into.latencies += latencies
    into.seconds += elapsed
    for status, count in statuses.items():
        into.statuses[status] = into.statuses.get(status, 0) + count


PHASES = {"alone": (True, False), "nopolicy": (False, True), "policy": (True, True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per phase, split over its rounds"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of phases")
    parser.add_argument("--heavy-clients", type=int, default=4, help="clients flooding heavy")
    parser.add_argument(
        "--light-rate", type=float, default=0.0, help="light requests a second (0: back to back)"
    )
    parser.add_argument("--heavy", choices=sorted(HEAVY_MODELS), default="detector")
    args = parse_args(parser, argv, seconds=0.5, rounds=1)
    if args.seconds <= 0 or args.rounds < 1 or args.heavy_clients < 1 or args.light_rate < 0:
        parser.error(
            "--seconds must be > 0, --rounds and --heavy-clients at least 1, --light-rate >= 0"
        )
    phases = {name: Phase() for name in PHASES}
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-") as tmp:
        workdir = Path(tmp)
        bundles = {
            LIGHT: bundle(workdir, LIGHT, build_light),
            HEAVY: bundle(workdir, HEAVY, HEAVY_MODELS[args.heavy]),
        }
        for _ in range(args.rounds):
            for name, (policy, flooded) in PHASES.items():
                run_phase(
                    phases[name],
                    bundles,
                    policy=policy,
                    flood=args.heavy_clients if flooded else 0,
                    seconds=args.seconds / args.rounds,
                    rate=args.light_rate,
                )
    figures = {name: p.figures() for name, p in phases.items()}
    alone = figures["alone"]["light_p99_ms"]
    policy_ratio = figures["policy"]["light_p99_ms"] / alone
    nopolicy_ratio = figures["nopolicy"]["light_p99_ms"] / alone
    head = ("phase", "light p50", "light p99", "light n", "heavy/s", "heavy ms", "503")
    print("{:<10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>6}".format(*head))
    for name, f in figures.items():
        heavy_ms = f["heavy_ms_per_inference"]
        print(
            f"{name:<10} {f['light_p50_ms']:>10.3f} {f['light_p99_ms']:>10.3f} "
            f"{f['light_requests']:>8} {f['heavy_ok_per_s']:>8.1f} "
            f"{'-' if heavy_ms is None else f'{heavy_ms:.2f}':>9} {f['heavy_refused']:>6}"
        )
    print(
        f"light p99 under the heavy flood: {policy_ratio:.2f}x alone with the policy (goal <= "
        f"{GOAL}: {'met' if policy_ratio <= GOAL else 'NOT met'}), {nopolicy_ratio:.2f}x without"
    )
    report = {
        "light_p99_policy_over_alone": policy_ratio,
        "light_p99_nopolicy_over_alone": nopolicy_ratio,
        "goal": GOAL,
        "heavy": args.heavy,
        "heavy_clients": args.heavy_clients,
        "rounds": args.rounds,
        "phases": figures,
        "quick": args.quick,
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
