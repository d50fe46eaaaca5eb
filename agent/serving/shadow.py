"""A shadow model: a new version that runs a copy of sampled live requests beside the
serving one, off the request path, and is compared with it (``agent.serving.agreement``).

The request path (``LoadedModel.infer`` of the serving model, after its answer is
computed) only calls ``Shadow.offer``: a ``Sampler`` decides in one atomic counter step
whether this request is in the sampled share; a sampled one is copied (inputs and the
serving outputs, so a caller that reuses its buffers cannot change what is compared) and
left for the worker without waking it: when ``QUEUE_BOUND`` are already waiting, the
request is dropped (counted). The answer always comes from the serving model.

One worker thread per shadow runs the shadow model on the waiting requests, times it and
compares. What it may cost the serving path is bounded by:

- the sampled share, and at most ``QUEUE_BOUND`` copies waiting;
- one worker on the serving model's cores, so one shadow inference at a time (two at
  the end of a period, when ``stop`` drains beside the worker's comparison in progress);
- the worker collects every ``POLL_S`` instead of being woken per request (on a 35 us
  model, a wake-up per request was most of what a shadow added to the serving p99);
- the worker at the lowest CPU priority (``agent.serving.priority``: SCHED_IDLE, where
  a waking serving thread preempts it); so are the shadow's own runtime threads when
  its runner was loaded by ``at_idle_priority`` (as the agent does);
- its duty: comparisons take at most ``DUTY`` of the wall time; past it the worker
  pauses;
- the shadow loaded with the serving model's fair share of threads
  (``agent.deployment.steps``).

``bench.shadow`` measures the serving p99 with and without a shadow.

``judge`` is the gate (pure): agreement and latency against the deployment's
``ShadowSpec``; no compared request passes, "not judged: no traffic"; a shadow that
failed on every compared request fails, agreement bar or not. The latency gate
compares medians: the shadow's tail is mostly its low-priority worker waiting for the
CPU, not the model (on a loaded 2-vCPU box the same model as its own shadow showed p99
6-15 ms against 0.3 ms served, with equal medians), so p99 is reported beside the
serving one but not gated; the rollout's health gate judges the tail (p95) once the
device switched, at serving priority.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from agent.runners.base import Runner
from agent.serving.agreement import Tally, compare
from agent.serving.placement import confined
from agent.serving.priority import lower_priority
from protocol import SHADOW_GATE_PREFIX, ShadowFigures, ShadowSpec, ShadowVerdict

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: sampled requests waiting for the shadow at most; more are dropped (counted)
QUEUE_BOUND = 8
#: how often the worker collects the waiting requests (s): one wake-up per interval, not
#: one per sampled request (each wake-up is a thread switch and a turn at the GIL that a
#: serving thread waits for)
POLL_S = 0.02
#: the largest share of the wall time the worker may spend on comparisons (the shadow's
#: inference included): past it, it pauses and the sampled requests meanwhile are dropped
DUTY = 0.25
#: the most wall time (s) the worker may fall behind its duty by, after a quiet spell
DUTY_CREDIT_S = 1.0

_Item = tuple[dict[str, "np.ndarray"], dict[str, "np.ndarray"], float]


class Sampler:
    """Takes exactly ``share`` of the calls, evenly spread: call ``n`` (from 0) is taken
    when ``floor((n + 1) * share) > floor(n * share)``. Thread-safe without a lock
    (``itertools.count`` steps atomically under the GIL)."""

    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"sample share must be > 0 and <= 1, not {share}")
        self.share = share
        self._calls = itertools.count()

    def take(self) -> bool:
        n = next(self._calls)
        return math.floor((n + 1) * self.share) > math.floor(n * self.share)


class Shadow:
    """One shadow period of model ``name``: ``version`` shadowing ``serving_version``."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        serving_version: str,
        runner: Runner,
        spec: ShadowSpec,
        deployment_id: int | None = None,
        cores: Collection[int] | None = None,
        started_at: datetime,
    ) -> None:
        self.name, self.version, self.serving_version = name, version, serving_version
        self.spec = spec
        self.deployment_id = deployment_id
        self.started_at = started_at
        self._runner = runner
        self._cores = cores
        self._sampler = Sampler(spec.sample)
        #: the sampled requests waiting: serving threads append (at most QUEUE_BOUND,
        #: under ``_offer_lock``), the worker pops (``deque`` pops are atomic)
        self._waiting: deque[_Item] = deque()
        #: the request path's own lock: the worker never takes it, so a serving thread
        #: never waits for a low-priority worker preempted inside a critical section
        self._offer_lock = threading.Lock()
        self._sampled = self._dropped = 0  # under ``_offer_lock``
        self._closed = False  # under ``_offer_lock``: ``stop`` counted what was left
        #: the worker's tally, and ``figures``
        self._lock = threading.Lock()
        self._tally = Tally()
        self._worker = threading.Thread(target=self._work, name=f"shadow-{name}", daemon=True)
        self._stopped = False
        self._wake = threading.Event()  # set by ``stop``: no more polling, drain and end

    def start(self) -> None:
        self._worker.start()

    # -- the request path ------------------------------------------------------------------

    def offer(
        self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], seconds: float
    ) -> None:
        """A served request (its inputs, the serving outputs and backend time): kept for
        the shadow if sampled and there is room, else nothing. Never blocks on the
        worker, never wakes it, never raises."""
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        try:
            if self._stopped or not self._sampler.take():
                return
            with self._offer_lock:
                self._sampled += 1
                if len(self._waiting) >= QUEUE_BOUND:
                    self._dropped += 1
                    return
            item = (
                {k: np.array(v, copy=True) for k, v in inputs.items()},
                {k: np.array(v, copy=True) for k, v in outputs.items()},
                seconds * 1000.0,
            )
            with self._offer_lock:
                # filled by another serving thread meanwhile, or the period ended
                if self._closed or len(self._waiting) >= QUEUE_BOUND:
                    self._dropped += 1
                else:
                    self._waiting.append(item)
        except Exception as exc:  # the serving path must never fail because of a shadow
            logger.debug("shadow of %s: offer failed: %s", self.name, exc)

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        lower_priority(f"shadow of {self.name}")
        started, busy = time.monotonic(), 0.0
        with confined(self._cores):
            while not self._wake.wait(POLL_S):
                while not self._stopped and (item := self._next()) is not None:
                    begun = time.perf_counter()
                    self._compare(item)
                    busy += time.perf_counter() - begun
                    # idle time earns at most DUTY_CREDIT_S of credit: a quiet hour is
                    # not a licence for a burst at full duty
                    now = time.monotonic()
                    started = max(started, now - busy / DUTY - DUTY_CREDIT_S)
                    over = busy / DUTY - (now - started)
                    if over > 0 and self._wake.wait(over):
                        return

    def _drain(self) -> None:
        """Compare what is waiting (``stop``'s, at the caller's priority: a worker the
        box's load starved still leaves its period a verdict on what it sampled)."""
        with confined(self._cores):
            while (item := self._next()) is not None:
                self._compare(item)

    def _next(self) -> _Item | None:
        try:
            return self._waiting.popleft()
        except IndexError:
            return None

    def _compare(self, item: _Item) -> None:
        try:
            self._run(*item)
        except Exception as exc:  # never let a comparison end the worker
            logger.warning("shadow of %s: a comparison failed: %s", self.name, exc)
            with self._lock:
                self._tally.failed()

    def _run(self, inputs: dict[str, np.ndarray], served: dict[str, np.ndarray], ms: float) -> None:
        start = time.perf_counter()
        try:
            outputs = self._runner.infer(inputs)
        except Exception as exc:
            logger.debug("shadow %s %s failed on a request: %s", self.name, self.version, exc)
            with self._lock:
                self._tally.failed()
            return
        shadow_ms = (time.perf_counter() - start) * 1000.0
        result = compare(served, outputs)
        with self._lock:
            self._tally.add(result, shadow_ms=shadow_ms, serving_ms=ms)

    def stop(self, timeout: float = 30.0) -> None:
        """No more requests are taken; the waiting ones are compared, by a thread at the
        caller's priority beside the worker's comparison in progress (for at most
        ``timeout`` seconds: a shadow too slow for that has the rest dropped, counted);
        the worker ends once its comparison in progress, if any, returns."""
        self._stopped = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        drain = threading.Thread(target=self._drain, name=f"shadow-{self.name}-drain", daemon=True)
        drain.start()
        for thread in (drain, self._worker):
            if thread.ident is not None:  # started (a shadow may stop before it starts)
                thread.join(max(0.0, deadline - time.monotonic()))
        if drain.is_alive() or self._waiting:
            logger.warning("shadow of %s: the waiting requests were not all compared", self.name)
        self._discard()

    def _discard(self) -> None:
        with self._offer_lock:
            self._closed = True
            while self._next() is not None:  # one pop at a time: a drain may still pop
                self._dropped += 1

    # -- figures ---------------------------------------------------------------------------

    def figures(self, *, elapsed_s: float) -> ShadowFigures:
        """Where the period stands (verdict ``running``)."""
        with self._lock:
            t = self._tally
            return ShadowFigures(
                name=self.name,
                version=self.version,
                serving_version=self.serving_version,
                deployment_id=self.deployment_id,
                started_at=self.started_at,
                duration_s=max(0.0, elapsed_s),
                sample=self.spec.sample,
                sampled=self._sampled,
                compared=t.compared,
                dropped=self._dropped,
                errors=t.errors,
                agreement_pct=t.agreement_pct,
                top1_agreement_pct=t.top1_agreement_pct,
                max_deviation=t.max_deviation,
                mean_deviation=t.mean_deviation,
                shadow_p50_ms=t.latency("shadow", 50),
                shadow_p99_ms=t.latency("shadow", 99),
                serving_p50_ms=t.latency("serving", 50),
                serving_p99_ms=t.latency("serving", 99),
            )


def _pct(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") + "%"


def judge(figures: ShadowFigures, spec: ShadowSpec) -> ShadowFigures:
    """The gate's verdict on a finished period: ``passed`` or ``failed`` with a reason
    (one line starting with ``SHADOW_GATE_PREFIX`` when failed)."""

    def verdict(ok: bool, reason: str | None) -> ShadowFigures:
        v = ShadowVerdict.PASSED if ok else ShadowVerdict.FAILED
        text = reason if ok or reason is None else f"{SHADOW_GATE_PREFIX} {reason}"
        return figures.model_copy(update={"verdict": v, "reason": text})

    f = figures
    if f.compared == 0 and f.sampled > 0:  # the shadow could not keep up with even one
        return verdict(
            False, f"none of the {f.sampled} sampled requests was compared (all dropped)"
        )
    if f.compared == 0:
        return verdict(True, "not judged: no traffic")
    if f.errors >= f.compared:  # a version that fails every request never switches
        return verdict(False, f"the new version failed on all {f.compared} requests")
    need = spec.min_agreement_pct
    if need is not None and f.agreement_pct is not None and f.agreement_pct < need:
        return verdict(
            False,
            f"agreement {_pct(f.agreement_pct)} < {_pct(need)} over {f.compared} requests"
            + (f" ({f.errors} failed)" if f.errors else ""),
        )
    ratio, shadow_ms, serving_ms = spec.max_latency_ratio, f.shadow_p50_ms, f.serving_p50_ms
    if ratio is not None and shadow_ms is not None and serving_ms is not None:
        floor = spec.latency_floor_ms
        if shadow_ms > serving_ms * ratio and shadow_ms - serving_ms > floor:
            return verdict(
                False,
                f"latency p50 {shadow_ms:.2f} ms > {ratio:g}x the serving "
                f"version's {serving_ms:.2f} ms (and more than {floor:g} ms above it)",
            )
    return verdict(True, None)


class ShadowBoard:
    """The latest shadow period of each model name: a running ``Shadow`` (live figures)
    or the final, judged figures. What the agent's state report shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Shadow, float]] = {}
        self._final: dict[str, ShadowFigures] = {}

    def running(self, shadow: Shadow) -> None:
        with self._lock:
            self._running[shadow.name] = (shadow, time.monotonic())
            self._final.pop(shadow.name, None)

    def finished(self, figures: ShadowFigures) -> None:
        with self._lock:
            self._running.pop(figures.name, None)
            self._final[figures.name] = figures

    def elapsed(self, shadow: Shadow) -> float:
        with self._lock:
            entry = self._running.get(shadow.name)
        return time.monotonic() - entry[1] if entry is not None and entry[0] is shadow else 0.0

    def report(self) -> list[ShadowFigures]:
        """Every model's latest period, by name."""
        with self._lock:
            running = dict(self._running)
            final = dict(self._final)
        now = time.monotonic()
        live = {n: s.figures(elapsed_s=now - t) for n, (s, t) in running.items()}
        return [{**final, **live}[n] for n in sorted({*final, *live})]
