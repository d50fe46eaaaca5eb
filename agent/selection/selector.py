"""Measured backend selection for one staged model (the lifecycle's ``selecting`` step).

1. Candidates: the host's profile (``hw_profiles.match_profile``) lists backends in
   priority order; ``eligible_candidates`` keeps those the host's facts offer; the bundle's
   framework and ``constraints.runtimes`` narrow them; a runner plugin must support each
   one here (``supports``). With none left, the default runner serves (no measurement).
2. Cache: a result for (bundle digest, hardware fingerprint, runtime versions) is reused:
   only the chosen backend is loaded (a restart does not benchmark again).
3. Reference: ONNX Runtime CPU in fp32 (or, where it is not a candidate or does not
   load, the first fp32 candidate that runs; a lower-precision candidate listed before it
   is checked after it; where it loads but cannot run the first input set, no other
   candidate is judged on those inputs: "not checked") on the input sets
   ``inputs_for`` gives (``agent.runners.inputs``: the bundle's ``bootstrap.npz``, then
   sets generated from its input hints and the defaults; the first one is the timing input).
4. Champion and challenger, one candidate loaded at a time beside the champion (peak:
   two models in memory): the reference is the first champion. Each other candidate is
   loaded and warmed up, its outputs on every set checked against the reference's
   (``guard``: error relative to the reference's scale, by default at most 1%, optionally
   top-k agreement; a candidate that cannot run is reported with the inputs it was given
   and how to supply better ones), then timed
   interleaved against the champion, in rotating rounds of short bursts, running at most
   ``cpu_share`` of the time, each p50 over its calmest bursts (``measure``). It
   displaces the champion only when it is ``margin_pct`` (3%) faster, judged on their
   per-round paired ratios (``measure.paired_ratios``, ``policy.displaces``): noise does
   not flip the winner, and a pair that swaps places with the box's load goes to the one
   whose busy (or calm) rounds cost less.
   The loser is closed at once.
5. Budget: ``budget_s`` (5 s) covers the whole selection, loads included. What is left is
   shared out over the pairs still to time (minus the loads they will take); a candidate
   for which no time is left is reported as not measured.

``forget(bundle_digest)`` drops the cached results of a bundle, so that its next selection
measures again (an operator's re-selection).

The result (every candidate's figures, the choice and why) goes to the control plane
with the device's state report.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

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
    run_failed,
)
from agent.selection.measure import paired_ratios, time_interleaved, warm_up
from agent.selection.policy import MARGIN_PCT, Measurement, displaces, median_round, regrets

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

REFERENCE_KEY = "onnxruntime:CPUExecutionProvider:f32"
#: the least time one champion/challenger pair is timed for (seconds)
MIN_PAIR_S = 0.1
#: kept of the budget after the last duel: closing its loser, recording the choice
TAIL_S = 0.05
#: ``time_interleaved``'s burst per candidate (its default)
BURST_S = 0.05


@dataclass(frozen=True)
class SelectionSettings:
    #: the whole selection of one model (loads included)
    budget_s: float = 5.0
    #: the largest share of one core the measuring thread uses
    cpu_share: float = 0.5
    tolerance: float = DEFAULT_TOLERANCE
    #: how many input sets the accuracy guard compares on (``inputs_for`` makes them)
    guard_sets: int = DEFAULT_GUARD_SETS
    #: percent a challenger's p50 must be below the champion's to displace it
    margin_pct: float = MARGIN_PCT


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
        # every load needs numpy, which an idle agent does not import: here, before the
        # budget's clock starts, so the first candidate's load does not pay for it
        import numpy  # noqa: F401

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

    def forget(self, bundle_digest: str) -> int:
        """Drop the cached results of ``bundle_digest``: its next ``select`` measures again
        (an operator's re-selection); how many cached results were dropped."""
        return self._cache.drop(bundle_digest)

    def _admit(
        self, spec: Any, load: LoadFn, trial: _Trial, tolerance: float, topk: int | None
    ) -> Runner | None:
        """Load, warm up and check one candidate against the reference; the runner if it
        is accurate (its measurement recorded in ``trial``), else None (closed, excluded)."""
        if trial.refused is not None:
            # the reference loaded and could not run these inputs: they are not inputs the
            # model takes (a shape it constrains), so a candidate that "runs" them has
            # nothing to be checked against (seen: OpenVINO answering an empty tensor)
            why = f"not checked: the reference {REFERENCE_KEY} could not run these inputs"
            trial.figures[spec.key] = Measurement(spec.key, excluded=why)
            return None
        rss = psutil.Process().memory_info().rss
        try:
            runner = load(spec)
        except AgentError as exc:
            trial.figures[spec.key] = Measurement(spec.key, excluded=f"load failed: {exc}")
            return None
        try:
            return self._check(spec, runner, trial, tolerance, topk, rss)
        except BaseException:  # anything but an exclusion: the runner is closed all the same
            runner.close()
            raise

    def _check(
        self,
        spec: Any,
        runner: Runner,
        trial: _Trial,
        tolerance: float,
        topk: int | None,
        rss: int,
    ) -> Runner | None:
        """``_admit`` once ``runner`` is loaded: the runner if accurate, else None (closed)."""
        trial.memory[spec.key] = max(0, psutil.Process().memory_info().rss - rss)
        first_ran = False
        try:
            if trial.sets is None:
                trial.sets = as_input_sets(trial.inputs_for(runner))
            first = warm_up(runner.infer, trial.sets[0])  # the bootstrap's, when shipped
            first_ran = True
            outputs = [first, *self._run_drawn(spec, runner, trial)]
        except AgentError as exc:
            runner.close()
            failed = run_failed(exc, trial.sets)
            trial.figures[spec.key] = Measurement(spec.key, excluded=failed)
            logger.info("selection: %s excluded: %s", spec.key, failed)
            if spec.key == REFERENCE_KEY and trial.sets is not None and not first_ran:
                # the inputs were made and the first set itself does not run: not inputs
                # the model takes (a failure to make them is not this: the next fp32
                # candidate is the reference then, as before; a drawn set after the first
                # that it cannot run is dropped, ``_run_drawn``)
                trial.refused = failed
            return None
        if trial.reference is None and spec.precision == "f32":
            trial.reference = outputs
        error, why = (
            compare_outputs(trial.reference, outputs, tolerance=tolerance, topk=topk)
            if trial.reference is not None
            else (None, "no fp32 reference to compare with")
        )
        if why is not None:
            runner.close()
            trial.figures[spec.key] = Measurement(spec.key, rel_error=error, excluded=why)
            logger.info("selection: %s excluded: %s", spec.key, why)
            return None
        trial.figures[spec.key] = Measurement(spec.key, rel_error=error)
        return runner

    @staticmethod
    def _run_drawn(spec: Any, runner: Runner, trial: _Trial) -> list[dict[str, np.ndarray]]:
        """The outputs on the drawn input sets (after the first). The reference drops
        the drawn sets it cannot run (inputs the model does not take: a shape it
        constrains), so that every other candidate is judged on sets it was judged on;
        another candidate that cannot run one is excluded (AgentError)."""
        assert trial.sets is not None
        outputs: list[dict[str, np.ndarray]] = []
        kept = [trial.sets[0]]
        judging = trial.reference is None and spec.precision == "f32"  # the reference
        problem = None
        for one in trial.sets[1:]:
            try:
                outputs.append(runner.infer(one))
            except AgentError as exc:
                if not judging:
                    raise
                problem = exc
                continue
            kept.append(one)
        if problem is not None:
            logger.warning(
                "selection: the reference %s cannot run %d of the %d drawn input sets (%s): "
                "the candidates are judged on the other %d",
                spec.key,
                len(trial.sets) - len(kept),
                len(trial.sets) - 1,
                problem,
                len(kept),
            )
        trial.sets = kept
        return outputs

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
        """Champion and challenger: the fp32 reference is the first champion; each other
        candidate in turn is loaded, checked, and timed interleaved against the champion
        (two models loaded at most); it displaces the champion only when faster by the
        margin, and the loser is closed. The budget is shared out over the pairs left."""
        settings = self.settings
        deadline = started + settings.budget_s
        trial = _Trial(inputs_for)
        ordered = sorted(specs, key=lambda c: c.key != REFERENCE_KEY)
        champion: tuple[str, Runner] | None = None
        load_costs: list[float] = []
        round_s = 2 * BURST_S / max(0.05, min(1.0, settings.cpu_share))
        pairs = 0
        try:
            for i in range(len(ordered)):
                spec = ordered[i]
                if trial.reference is None and spec.precision != "f32":
                    later = next((j for j in range(i + 1, len(ordered)) if _f32(ordered[j])), None)
                    if later is not None:  # checked once an fp32 candidate gave the reference
                        ordered.insert(i, ordered.pop(later))
                        spec = ordered[i]
                left = deadline - time.monotonic()
                expected_load = max(load_costs, default=0.0)
                if champion is not None and left < expected_load + MIN_PAIR_S:
                    trial.figures[spec.key] = Measurement(spec.key, excluded=self._spent())
                    continue
                began = time.monotonic()
                runner = self._admit(spec, load, trial, tolerance, topk)
                load_costs.append(time.monotonic() - began)
                if runner is None:
                    continue
                if champion is None:
                    champion = (spec.key, runner)
                    continue
                rest = len(ordered) - i  # this pair and the ones after it
                # a pair checks its time between rounds: keep one round in hand
                left = deadline - time.monotonic() - expected_load * (rest - 1) - round_s
                # the budget holds, min_runs or not, with the loser's close and the
                # bookkeeping after the last duel inside it
                hard = deadline - time.monotonic() - TAIL_S
                champion = self._duel(champion, (spec.key, runner), trial, left / rest, hard)
                pairs += 1
        except BaseException:
            if champion is not None:
                champion[1].close()
            raise
        ordered_figures = [trial.figures[s.key] for s in specs]
        if champion is None:  # the reference's reason first: the others may refer to it
            first = sorted(ordered_figures, key=lambda m: m.key != REFERENCE_KEY)
            why = "; ".join(f"{m.key}: {m.excluded}" for m in first)
            raise RunnerUnavailable(f"no backend can serve the model: {why}")
        chosen, winner = champion
        best = trial.figures[chosen]
        unmeasured = any(m.excluded == self._spent() for m in ordered_figures)
        if pairs == 0 and not unmeasured:
            reason = "the only candidate within the accuracy guard"
        elif best.p50_ms is None:  # the budget ran out before any pair was timed
            reason = f"the first accurate candidate: {self._spent()} before any comparison"
        else:
            reason = (
                f"kept its place in every pair timed (p50 {best.p50_ms:.3f} ms): a challenger "
                f"timed beside it had to be {settings.margin_pct:g}% faster to displace it"
            )
        if not unmeasured:  # a choice the budget cut short is measured again next time
            self._cache.put(key, chosen, ordered_figures)
        elapsed = time.monotonic() - started
        logger.info("selection: chose %s (%s) in %.1fs", chosen, reason, elapsed)
        return Selection(winner, chosen, reason, self.profile, ordered_figures, elapsed_s=elapsed)

    def _spent(self) -> str:
        return f"not measured: the selection budget ({self.settings.budget_s:g} s) was spent"

    def _duel(
        self,
        champion: tuple[str, Runner],
        challenger: tuple[str, Runner],
        trial: _Trial,
        budget_s: float,
        hard_s: float,
    ) -> tuple[str, Runner]:
        """Time the two interleaved for ``budget_s``; the new champion (the loser closed)."""
        (ckey, crun), (nkey, nrun) = champion, challenger
        assert trial.sets is not None
        try:
            timings = time_interleaved(
                {ckey: crun.infer, nkey: nrun.infer},
                trial.sets[0],
                budget_s=max(MIN_PAIR_S, budget_s),
                cpu_share=self.settings.cpu_share,
                burst_s=BURST_S,
                hard_s=max(0.0, hard_s),
            )
        except AgentError as exc:  # one of them failed while timed: that one is out
            return self._after_failure(champion, challenger, trial, exc)
        except BaseException:
            nrun.close()
            raise
        for k, t in timings.items():
            if t.runs == 0:  # the budget ran out first: its earlier figures stand
                if k == nkey:
                    trial.figures[k] = replace(trial.figures[k], excluded=self._spent())
                continue
            trial.figures[k] = replace(
                trial.figures[k],
                p50_ms=t.p50_ms,
                p99_ms=t.p99_ms,
                runs=t.runs,
                memory_bytes=trial.memory.get(k),
            )
            logger.info("selection: %s p50 %.3f ms p99 %.3f ms", k, t.p50_ms, t.p99_ms)
        ratios = paired_ratios(timings[nkey].bursts_ms, timings[ckey].bursts_ms)
        if logger.isEnabledFor(logging.DEBUG):  # why a duel went as it did, round by round
            logger.debug(
                "selection: burst medians (ms) %s %s, %s %s",
                ckey,
                [round(b, 4) for b in timings[ckey].bursts_ms],
                nkey,
                [round(b, 4) for b in timings[nkey].bursts_ms],
            )
        if ratios:
            keep, take = regrets(ratios)
            logger.info(
                "selection: %s over %s in %d paired rounds: median %.3f (decides beyond the "
                "margin; within it the regrets: of keeping %.3f, of taking %.3f)",
                nkey,
                ckey,
                len(ratios),
                median if (median := median_round(ratios)) is not None else float("nan"),
                keep,
                take,
            )
        if displaces(trial.figures[ckey], trial.figures[nkey], self.settings.margin_pct, ratios):
            crun.close()
            return challenger
        nrun.close()
        return champion

    def _after_failure(
        self,
        champion: tuple[str, Runner],
        challenger: tuple[str, Runner],
        trial: _Trial,
        exc: AgentError,
    ) -> tuple[str, Runner]:
        """A run failed while the two were timed: the one that fails again on the timing
        input is excluded and closed (the challenger when neither does: the champion was
        already timed without failing); the other is the champion."""
        assert trial.sets is not None
        crun, nrun = champion[1], challenger[1]
        out, keep, error = challenger, champion, exc
        try:
            nrun.infer(trial.sets[0])
        except AgentError as again:
            error = again
        else:
            try:
                crun.infer(trial.sets[0])
            except AgentError as again:
                out, keep, error = champion, challenger, again
        why = f"run failed while timed: {error}"
        trial.figures[out[0]] = replace(trial.figures[out[0]], excluded=why)
        logger.info("selection: %s excluded: %s", out[0], why)
        out[1].close()
        return keep


def _f32(spec: Any) -> bool:
    return bool(spec.precision == "f32")


@dataclass
class _Trial:
    """What one selection has learnt so far: the inputs, the reference outputs, each
    candidate's figures and the memory its load took."""

    inputs_for: InputsFn
    sets: list[InputSet] | None = None
    reference: list[dict[str, np.ndarray]] | None = None
    figures: dict[str, Measurement] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    #: why the reference candidate, loaded, could not run the inputs (no other is judged)
    refused: str | None = None


__all__ = ["Selection", "SelectionSettings", "Selector"]
