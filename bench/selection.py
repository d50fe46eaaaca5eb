"""Does the agent's measured selection pick the fastest accurate backend for each model?

    python -m bench.selection [--seconds 3] [--models NAME ...] [--budget 5]
                              [--memory | --no-memory] [--quick]

For each model of ``bench.selection_models`` (a ResNet-18-like CNN, a depthwise CNN, a
transformer encoder, a tiny MLP, a CNN with dynamic height and width, a stateful GRU step
with an int64 scalar: all built in code), in one run:

1. **Selection, as a device runs it.** The model goes into a bundle (with its input as
   ``bootstrap.npz``); this host's profile and candidates come from
   ``host_candidates(probe_host().to_dict())`` (the profile's and the plain-default
   variants); a ``Selector`` with the default ``SelectionSettings`` (5 s budget, 0.5 CPU
   share, 3% margin; ``--budget`` to change the budget) and a fresh ``SelectionCache``
   loads the candidates one at a time beside the champion with ``load_runner(...,
   spec=)`` and measures them on ``bundle_input_sets`` (the bootstrap input, then the
   accuracy guard's generated sets), exactly as the ``selecting`` step of a deployment
   does. Its choice and how long it took are recorded.
   With ``--memory`` (the default on Linux, off with ``--quick``) the selection runs in a
   fresh process whose peak RSS is measured, and so is each candidate loaded alone
   (``bench.selection_memory``): ``memory.peak_over_largest_model`` is the selection's
   peak over the largest single candidate (goal: <= 2).
2. **Independent re-measurement.** Every candidate the selection could consider (those it
   excluded too) is loaded afresh, and so is a plain ``onnxruntime.InferenceSession(path)``
   with default session options: the "ORT default" a user would write, also the fp32
   reference. Each candidate's outputs on the same input are compared with the
   reference's (the agent's guard, ``DEFAULT_TOLERANCE``) before any timing. Then 20
   warm-up calls each, and ``--seconds`` of back-to-back calls each (full CPU, no sleeps
   between calls), in rounds of ``SLICE_S`` per candidate with the starting candidate
   rotating, so drift on a shared box hits all alike. Each slice starts after a short
   pause (``SETTLE_S``: ONNX Runtime's idle workers spin for ~50 ms after a run, which
   would steal a core from whichever candidate comes next) and two untimed calls.
3. ``best`` is the lowest p50 among the accurate candidates, ``best_all`` the lowest among
   them and the ORT default. ``chosen_over_best_all`` compares the chosen one with each
   of the others in paired rounds: per round, its slice median over the other's, the
   median of those over the rounds; the worst of them, and 1.0 where the chosen one was
   the fastest (goal: <= 1.05 on every model; ``paired_over`` has each, ``paired_highest``
   names that candidate). ``chosen_over_best`` (the accurate candidates only) and
   ``ort_default_over_chosen`` likewise. Why paired: on the 2-vCPU VMs here the box has
   slow spells of a second or so (a 30 us GRU step's slices read 30 or 50 us, one
   thread or two alike), and a p50 pooled over all of a candidate's slices sits on the
   edge between the two modes, so it moves with how many of its slices a spell hit: the
   same session read 0.030 ms in one run and 0.039 in the next, against 0.033 for the
   ORT default of the same configuration in the same rounds. The pooled ratios are
   reported as well (``pooled``).

Prints a table per model, then one JSON line last. The exit code is 0 even when a goal is
missed (a "goal NOT met" line says so); non-zero only when the benchmark itself fails.
``--quick``: two models (depthwise-cnn, tiny-mlp), a 1.5 s selection budget, three 0.1 s
slices per candidate, no memory measurement.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.deployment.bundles import read_metadata
from agent.deployment.gate import BOOTSTRAP_FILENAME, bundle_input_sets
from agent.deployment.loading import load_runner
from agent.errors import AgentError
from agent.runners.base import Runner
from agent.runners.choice import candidate_runners
from agent.selection import DEFAULT_TOLERANCE, SelectionCache, SelectionSettings, Selector
from agent.selection.guard import compare_outputs
from agent.selection.host import host_candidates, installed_runtimes
from agent.selection.measure import paired_ratios
from bench import selection_memory
from bench.options import parse_args
from bench.selection_memory import one_model_bytes, select_measured
from bench.selection_models import SelectionModel, catalogue
from bench.selection_table import print_model
from hw_profiles import CandidateSpec, HwProfilesError, fingerprint, probe_host
from model_store import ModelStoreError, build_bundle, bundle_files
from model_store.digests import bundle_digest

#: goal: the chosen backend's p50 over the best of every candidate and the plain ORT
#: default, re-measured in the same run
GOAL_CHOSEN_OVER_BEST_ALL = 1.05
VERSION = "1.0.0"
WARMUP = 20
#: seconds of back-to-back calls per candidate per round
SLICE_S = 0.1
SLICE_WARMUP = 2  # untimed calls at the start of each slice (the first one is cold)
#: pause before each slice: ONNX Runtime's workers spin ~50 ms after a multi-threaded run
#: (its default allow_spinning), which would take a core from the next candidate's slice
SETTLE_S = 0.1
ORT_DEFAULT = "ort-default"


def _bundle(model: SelectionModel, workdir: Path) -> tuple[Path, Path, str]:
    """(model path, bundle dir, bundle digest): the model with its input as bootstrap."""
    model_path = model.build(workdir / model.name / "src" / "model.onnx")
    arrays: dict[str, Any] = model.feeds()
    np.savez(feeds := workdir / model.name / BOOTSTRAP_FILENAME, **arrays)
    bundle = workdir / model.name / "bundle"
    build_bundle(model_path, bundle, name=model.name, version=VERSION, extra_files=[feeds])
    return model_path, bundle, bundle_digest(f.sha256 for f in bundle_files(bundle))


def _load(model: SelectionModel, bundle: Path, spec: CandidateSpec) -> Runner:
    """What the deployment's ``selecting`` step does to load one candidate."""
    return load_runner(bundle, expected_name=model.name, expected_version=VERSION, spec=spec)


def select_as_device(
    model: SelectionModel,
    bundle: Path,
    digest: str,
    facts: dict[str, Any],
    cache_dir: Path,
    budget_s: float,
) -> tuple[dict[str, Any], list[CandidateSpec]]:
    """The agent's own selection, as the ``selecting`` step runs it: (its summary, the
    candidates it could consider)."""
    profile, candidates = host_candidates(facts)
    selector = Selector(
        profile=profile,
        candidates=candidates,
        fingerprint=fingerprint(facts),
        runtimes=installed_runtimes(),
        cache=SelectionCache(cache_dir),
        settings=SelectionSettings(budget_s=budget_s),
    )
    runtimes = candidate_runners(read_metadata(bundle))
    selection = selector.select(
        bundle_digest=digest,
        runtimes=runtimes,
        load=functools.partial(_load, model, bundle),
        inputs_for=lambda runner: bundle_input_sets(
            runner, bundle, count=selector.settings.guard_sets
        ),
    )
    selection.runner.close()
    return selection.summary(), selector.candidates_for(runtimes)


def _time_in_rounds(
    calls: dict[str, Callable[[], object]], seconds: float
) -> dict[str, dict[str, Any]]:
    """Each call: WARMUP untimed, then ``seconds`` of back-to-back timed calls in rounds of
    SLICE_S per call (the starting one rotating), each slice after a SETTLE_S pause and
    SLICE_WARMUP untimed calls. Per call: p50, p99, runs and each slice's median
    (``slices_ms``, one a round, in the order of the rounds)."""
    for fn in calls.values():
        for _ in range(WARMUP):
            fn()
    samples: dict[str, list[float]] = {key: [] for key in calls}
    ends: dict[str, list[int]] = {key: [0] for key in calls}  # where each slice ends
    keys = list(calls)
    rounds = max(1, round(seconds / SLICE_S))
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            fn, out = calls[key], samples[key]
            time.sleep(SETTLE_S)  # the previous candidate's spinning threads stop
            for _ in range(SLICE_WARMUP):
                fn()
            deadline = time.perf_counter() + seconds / rounds
            while True:
                start = time.perf_counter_ns()
                fn()
                out.append((time.perf_counter_ns() - start) / 1e6)
                if time.perf_counter() >= deadline:
                    break
            ends[key].append(len(out))
    return {
        key: {
            "p50_ms": float(np.percentile(s, 50)),
            "p99_ms": float(np.percentile(s, 99)),
            "runs": len(s),
            "slices_ms": [float(np.median(s[a:b])) for a, b in itertools.pairwise(ends[key])],
        }
        for key, s in samples.items()
    }


def _remeasure(
    model: SelectionModel,
    model_path: Path,
    bundle: Path,
    specs: list[CandidateSpec],
    seconds: float,
) -> dict[str, dict[str, Any]]:
    """Every candidate and the ORT default, checked against the reference, then timed."""
    feeds = model.feeds()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    reference = dict(zip(names, session.run(None, feeds), strict=True))
    results: dict[str, dict[str, Any]] = {}
    calls: dict[str, Callable[[], object]] = {ORT_DEFAULT: lambda: session.run(None, feeds)}
    runners: list[Runner] = []
    try:
        for spec in specs:
            try:  # the error says whether it failed to load or to run
                runners.append(runner := _load(model, bundle, spec))
                outputs = runner.infer(feeds)
            except AgentError as exc:
                results[spec.key] = {"excluded": f"failed: {exc}", "rel_error": None}
                continue
            error, why = compare_outputs(reference, outputs, tolerance=DEFAULT_TOLERANCE)
            results[spec.key] = {"rel_error": error, "excluded": why}
            calls[spec.key] = functools.partial(runner.infer, feeds)
        for key, figures in _time_in_rounds(calls, seconds).items():
            results.setdefault(key, {"rel_error": 0.0, "excluded": None}).update(figures)
    finally:
        for runner in runners:
            runner.close()
    return results


def bench_model(
    model: SelectionModel,
    workdir: Path,
    seconds: float,
    facts: dict[str, Any],
    *,
    budget_s: float,
    memory: bool,
) -> dict[str, Any]:
    model_path, bundle, digest = _bundle(model, workdir)
    args = (model, bundle, digest, facts, workdir / model.name / "cache", budget_s)
    footprint: dict[str, Any] | None = None
    if memory:  # the selection in a fresh process, its peak RSS measured
        (selection, specs), peak = select_measured(select_as_device, *args)
        alone = one_model_bytes(model.name, bundle, VERSION, specs)
        largest = max(alone.values(), default=0)
        footprint = {
            "selection_peak_bytes": peak,
            "one_model_bytes": alone,
            "peak_over_largest_model": round(peak / largest, 3) if largest else None,
        }
    else:
        selection, specs = select_as_device(*args)
    figures = _remeasure(model, model_path, bundle, specs, seconds)
    chosen = selection["chosen"]
    accurate = {k: f for k, f in figures.items() if k != ORT_DEFAULT and f["excluded"] is None}
    if not accurate or chosen not in figures or "p50_ms" not in figures[chosen]:
        raise AgentError(f"{model.name}: chosen {chosen} could not be re-measured")
    best = min(accurate, key=lambda k: accurate[k]["p50_ms"])
    best_all = min([*accurate, ORT_DEFAULT], key=lambda k: figures[k]["p50_ms"])
    p50 = figures[chosen]["p50_ms"]
    paired = _paired_over(figures, chosen, [*accurate, ORT_DEFAULT])
    worst = max(paired, key=lambda k: paired[k], default=None)
    worst_accurate = max((paired[k] for k in accurate if k in paired), default=1.0)
    return {
        "chosen": chosen,
        "chosen_over_best": round(max(1.0, worst_accurate), 4),
        "chosen_over_best_all": round(max(1.0, paired[worst]) if worst else 1.0, 4),
        "paired_highest": worst,
        "paired_over": {k: round(v, 4) for k, v in paired.items()},
        "ort_default_over_chosen": round(_paired_over(figures, ORT_DEFAULT, [chosen])[chosen], 4),
        "pooled": {
            "chosen_over_best": round(p50 / accurate[best]["p50_ms"], 4),
            "chosen_over_best_all": round(p50 / figures[best_all]["p50_ms"], 4),
            "ort_default_over_chosen": round(figures[ORT_DEFAULT]["p50_ms"] / p50, 4),
        },
        "candidates": {
            k: {"p50_ms": _round(f.get("p50_ms")), "p99_ms": _round(f.get("p99_ms"))}
            for k, f in figures.items()
            if k != ORT_DEFAULT
        },
        "best": best,
        "best_all": best_all,
        "input": list(model.input_shape),
        "description": model.description,
        "ort_default": {k: _round(figures[ORT_DEFAULT][k]) for k in ("p50_ms", "p99_ms")},
        "remeasured": {
            k: {
                "runs": f.get("runs", 0),
                "rel_error": _round(f["rel_error"], 3),
                "excluded": f["excluded"],
            }
            for k, f in figures.items()
        },
        "selection": selection,
        "memory": footprint,
    }


def _paired_over(
    figures: dict[str, dict[str, Any]], chosen: str, others: list[str]
) -> dict[str, float]:
    """Per other candidate: the median, over the rounds, of the chosen one's slice median
    over that candidate's in the same round (above 1: the other was faster). Slices of
    one round ran within a second or two of each other; the box's slow spells last about
    as long, so a pooled p50 depends on how many of each candidate's slices they hit,
    and a median of per-round ratios does not (module docstring)."""
    own = figures[chosen]["slices_ms"]
    return {
        k: float(np.median(ratios))
        for k in others
        if k != chosen and (ratios := paired_ratios(own, figures[k].get("slices_ms", [])))
    }


def _round(value: float | None, significant: int = 5) -> float | None:
    return None if value is None else float(f"{value:.{significant}g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per candidate")
    names = [m.name for m in catalogue()]
    parser.add_argument("--models", nargs="+", choices=names, default=names, metavar="NAME")
    parser.add_argument(
        "--budget",
        type=float,
        default=SelectionSettings().budget_s,
        help="the selection's budget, seconds (default: the agent's)",
    )
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=selection_memory.SUPPORTED,
        help="measure the selection's peak RSS against each candidate alone (fresh processes)",
    )
    args = parse_args(
        parser,
        argv,
        seconds=0.3,  # three SLICE_S slices
        models=["depthwise-cnn", "tiny-mlp"],
        budget=1.5,
        memory=False,
    )
    models = [m for m in catalogue() if m.name in args.models]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    facts = probe_host().to_dict()
    settings = SelectionSettings(budget_s=args.budget)
    profile = host_candidates(facts)[0]
    print(
        f"profile {profile}, selection budget {settings.budget_s:g} s, cpu share "
        f"{settings.cpu_share:g}, margin {settings.margin_pct:g}%; re-measured "
        f"{args.seconds:g} s per candidate, full CPU"
    )
    report: dict[str, Any] = {
        "profile": profile,
        "selection_settings": {
            "budget_s": settings.budget_s,
            "cpu_share": settings.cpu_share,
            "margin_pct": settings.margin_pct,
        },
        "models": {},
        "cpu_model": facts.get("cpu_model"),
        "runtimes": installed_runtimes(),
        "seconds_per_candidate": args.seconds,
        "goal_chosen_over_best_all": GOAL_CHOSEN_OVER_BEST_ALL,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="edgefleet-bench-selection-") as tmp:
            for model in models:
                result = bench_model(
                    model, Path(tmp), args.seconds, facts, budget_s=args.budget, memory=args.memory
                )
                report["models"][model.name] = result
                print_model(model.name, result)
    except (AgentError, HwProfilesError, ModelStoreError, OSError) as exc:
        print(f"bench.selection: error: {exc}", file=sys.stderr)
        return 1
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    goal = GOAL_CHOSEN_OVER_BEST_ALL
    for name, r in report["models"].items():
        if (ratio := r["chosen_over_best_all"]) > goal:
            print(f"goal NOT met: {name}: chosen / best of all {ratio:.3f} > {goal:.2f}")
    report["goal_met"] = all(r["chosen_over_best_all"] <= goal for r in report["models"].values())
    if report["goal_met"]:
        print(
            f"goal met: chosen / best of all (ORT default included) <= {goal:.2f} for every model"
        )
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
