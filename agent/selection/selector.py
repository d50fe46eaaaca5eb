"""Measured backend selection for one staged model (the lifecycle's ``selecting`` step).

1. Candidates: the host's profile (``hw_profiles.match_profile``) lists backends in
   priority order; ``eligible_candidates`` keeps those the host's facts offer; the bundle's
   framework and ``constraints.runtimes`` narrow them; a runner plugin must support each
   one here (``supports``). With none left, the default runner serves (no measurement).
2. Cache: a result for (bundle digest, hardware fingerprint, runtime versions) is reused:
   only the chosen backend is loaded (a restart does not benchmark again).
3. Reference: ONNX Runtime CPU in fp32 (or the first fp32 candidate) on the input sets
   ``inputs_for`` gives (``agent.runners.inputs``: the bundle's ``bootstrap.npz``, then
   sets generated from its input hints and the defaults; the first one is the timing input).
4. Each candidate is loaded and warmed up, and its outputs on every set are checked
   against the reference's (``guard``: error relative to the reference's scale, by
   default at most 1%, optionally top-k agreement); a candidate that cannot run is
   reported with the inputs it was given and how to supply better ones;
   the accurate ones are then timed interleaved, in rotating rounds of short bursts,
   within what is left of ``budget_s`` and running at most ``cpu_share`` of the time
   (``measure``). The losers are closed.
5. ``policy.choose``: a pin wins; else the lowest p50 (ties: p99, then memory).

The result (every candidate's figures, the choice and why) goes to the control plane
with the device's state report.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psutil

from agent.errors import AgentError, RunnerUnavailable
from agent.runners.base import Runner
from agent.selection.cache import SelectionCache, cache_key
from agent.selection.guard import (
    DEFAULT_GUARD_SETS,
    DEFAULT_TOLERANCE,
    InputSet,
    as_input_sets,
    compare_outputs,
    outputs_on,
    run_failed,
)
from agent.selection.measure import time_interleaved
from agent.selection.policy import Choice, Measurement, NoCandidate, choose

logger = logging.getLogger(__name__)

REFERENCE_KEY = "onnxruntime:CPUExecutionProvider:f32"


@dataclass(frozen=True)
class SelectionSettings:
    #: the whole selection of one model (loads included)
    budget_s: float = 20.0
    #: the largest share of one core the measuring thread uses
    cpu_share: float = 0.5
    tolerance: float = DEFAULT_TOLERANCE
    #: how many input sets the accuracy guard compares on (``inputs_for`` makes them)
    guard_sets: int = DEFAULT_GUARD_SETS


@dataclass
class Selection:
    """The loaded winner and what led to it."""

    runner: Runner
    chosen: str
    reason: str
    profile: str
    measurements: list[Measurement]
    cached: bool = False
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready: what the device reports."""
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "profile": self.profile,
            "cached": self.cached,
            "elapsed_s": round(self.elapsed_s, 3),
            "candidates": [
                {
                    "key": m.key,
                    "p50_ms": None if m.p50_ms is None else round(m.p50_ms, 4),
                    "p99_ms": None if m.p99_ms is None else round(m.p99_ms, 4),
                    "runs": m.runs,
                    "rel_error": None if m.rel_error is None else float(f"{m.rel_error:.3g}"),
                    "excluded": m.excluded,
                }
                for m in self.measurements
            ],
        }


#: load one candidate: (spec) -> a loaded runner (AgentError if it cannot)
LoadFn = Callable[[Any], Runner]
#: the input sets to measure a loaded runner on (one set, or several: the first is timed)
InputsFn = Callable[[Runner], InputSet | Sequence[InputSet]]


class Selector:
    """Selects the backend of each staged model on this host."""

    def __init__(
        self,
        *,
        profile: str,
        candidates: Sequence[Any],
        fingerprint: str,
        runtimes: Mapping[str, str],
        cache: SelectionCache,
        settings: SelectionSettings | None = None,
    ) -> None:
        """``candidates``: this host's eligible ``CandidateSpec`` s in priority order."""
        self.profile = profile
        self._candidates = tuple(candidates)
        self._fingerprint = fingerprint
        self._runtimes = dict(runtimes)
        self._cache = cache
        self.settings = settings or SelectionSettings()

    def candidates_for(self, runtimes: Sequence[str]) -> list[Any]:
        """The candidates whose runtime may serve the bundle (``runtimes``, preferred first)."""
        return [c for c in self._candidates if c.runtime in runtimes]

    def select(
        self,
        *,
        bundle_digest: str,
        runtimes: Sequence[str],
        load: LoadFn,
        inputs_for: InputsFn,
        pin: str | None = None,
        tolerance: float | None = None,
        topk: int | None = None,
        threads: int | None = None,
    ) -> Selection:
        """The loaded winner among the candidates whose runtime is in ``runtimes``.

        ``threads``: the model's fair share (``agent.serving.fairshare``): every
        candidate without its own thread count is measured and loaded with it, so the
        measurement neither takes the serving models' cores nor favours a backend for
        cores it will not have."""
        started = time.monotonic()
        specs = [
            dataclasses.replace(c, threads=threads) if threads and not c.threads else c
            for c in self.candidates_for(runtimes)
        ]
        by_key = {c.key: c for c in specs}
        if pin is not None:  # the operator's word overrides the measurement
            if pin not in by_key:
                have = ", ".join(by_key) or "none"
                raise RunnerUnavailable(f"pinned backend {pin} is not available here ({have})")
            return self._selection(load(by_key[pin]), pin, "pinned by the operator", started)
        if not specs:
            raise RunnerUnavailable("no eligible backend candidate on this device")
        key = cache_key(bundle_digest, self._fingerprint, self._runtimes)
        cached = self._cache.get(key)
        if cached is not None and cached[0] in by_key:
            logger.info("selection: %s from the cache (%s)", cached[0], self.profile)
            chosen = self._selection(load(by_key[cached[0]]), cached[0], "cached", started)
            chosen.measurements, chosen.cached = cached[1], True
            return chosen
        if len(specs) == 1:
            return self._selection(load(specs[0]), specs[0].key, "the only candidate", started)
        tol = self.settings.tolerance if tolerance is None else tolerance
        return self._measure_all(
            specs,
            load=load,
            inputs_for=inputs_for,
            started=started,
            key=key,
            tolerance=tol,
            topk=topk,
        )

    def _selection(self, runner: Runner, key: str, reason: str, started: float) -> Selection:
        return Selection(
            runner,
            key,
            reason,
            self.profile,
            [Measurement(key=key)],
            elapsed_s=time.monotonic() - started,
        )

    def _measure_all(
        self,
        specs: list[Any],
        *,
        load: LoadFn,
        inputs_for: InputsFn,
        started: float,
        key: str,
        tolerance: float,
        topk: int | None = None,
    ) -> Selection:
        """Load every candidate (the fp32 reference first), check its outputs, time the
        accurate ones interleaved, keep the winner loaded and close the others."""
        measurements: dict[str, Measurement] = {}
        loaded: dict[str, Runner] = {}
        memory: dict[str, int] = {}
        reference: list[dict[str, np.ndarray]] | None = None
        sets: list[InputSet] | None = None
        try:
            for spec in sorted(specs, key=lambda c: c.key != REFERENCE_KEY):
                rss = psutil.Process().memory_info().rss
                try:
                    runner = load(spec)
                except AgentError as exc:
                    measurements[spec.key] = Measurement(spec.key, excluded=f"load failed: {exc}")
                    continue
                memory[spec.key] = max(0, psutil.Process().memory_info().rss - rss)
                try:
                    if sets is None:
                        sets = as_input_sets(inputs_for(runner))
                    outputs = outputs_on(runner.infer, sets)
                except AgentError as exc:
                    runner.close()
                    failed = run_failed(exc, sets)
                    measurements[spec.key] = Measurement(spec.key, excluded=failed)
                    logger.info("selection: %s excluded: %s", spec.key, failed)
                    continue
                if reference is None and spec.precision == "f32":
                    reference = outputs
                error, why = (
                    compare_outputs(reference, outputs, tolerance=tolerance, topk=topk)
                    if reference is not None
                    else (None, "no fp32 reference to compare with")
                )
                if why is not None:
                    runner.close()
                    measurements[spec.key] = Measurement(spec.key, rel_error=error, excluded=why)
                    logger.info("selection: %s excluded: %s", spec.key, why)
                    continue
                loaded[spec.key] = runner
                measurements[spec.key] = Measurement(spec.key, rel_error=error)
            left = self.settings.budget_s - (time.monotonic() - started)
            assert sets is not None or not loaded
            timings = (
                time_interleaved(
                    {k: r.infer for k, r in loaded.items()},
                    sets[0] if sets else {},
                    budget_s=max(0.5, left * 0.9),
                    cpu_share=self.settings.cpu_share,
                )
                if len(loaded) > 1
                else {}
            )
            for k, t in timings.items():
                m = measurements[k]
                measurements[k] = replace(
                    m, p50_ms=t.p50_ms, p99_ms=t.p99_ms, runs=t.runs, memory_bytes=memory.get(k)
                )
                logger.info("selection: %s p50 %.3f ms p99 %.3f ms", k, t.p50_ms, t.p99_ms)
            ordered = [measurements[s.key] for s in specs]
            if len(loaded) == 1:  # one accurate candidate: nothing to compare it with
                (only,) = loaded
                choice = Choice(only, "the only candidate within the accuracy guard", (only,))
            else:
                try:
                    choice = choose(ordered)
                except NoCandidate as exc:
                    raise RunnerUnavailable(str(exc)) from exc
            winner = loaded.pop(choice.key)
        finally:
            for runner in loaded.values():
                runner.close()
        self._cache.put(key, choice.key, ordered)
        elapsed = time.monotonic() - started
        logger.info("selection: chose %s (%s) in %.1fs", choice.key, choice.reason, elapsed)
        return Selection(
            winner, choice.key, choice.reason, self.profile, ordered, elapsed_s=elapsed
        )


__all__ = ["Selection", "SelectionSettings", "Selector"]
