"""A shadow model: a new version that runs a copy of sampled live requests beside the
serving one, off the request path, and is compared with it (``agent.serving.agreement``).

The request path (``LoadedModel.infer`` of the serving model, after its answer is
computed) only calls ``Shadow.offer``: a ``Sampler`` decides in one atomic counter step
whether this request is in the sampled share; a sampled one is copied (inputs and the
serving outputs, so a caller that reuses its buffers cannot change what is compared) and
put on a bounded queue without waiting: when the queue is full the request is dropped and
counted. The answer always comes from the serving model.

One worker thread per shadow runs the shadow model on the queued requests, times it and
compares. The cost to the serving path is bounded by: the sampled share, the queue
bound (``QUEUE_BOUND`` copies at most), one worker (so at most one shadow inference at a
time), the worker at a lower CPU priority (nice +``WORKER_NICE``, Linux) and on the
serving model's cores, and the shadow loaded with the serving model's fair share of
threads (``agent.deployment.steps``). ``bench.shadow`` measures the serving p99 with and
without a shadow.

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
import os
import queue
import threading
import time
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from agent.runners.base import Runner
from agent.serving.agreement import Tally, compare
from agent.serving.placement import confined
from protocol import SHADOW_GATE_PREFIX, ShadowFigures, ShadowSpec, ShadowVerdict

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: sampled requests waiting for the shadow at most; more are dropped (counted)
QUEUE_BOUND = 8
#: how much lower the worker's CPU priority is than the serving threads' (Linux nice)
WORKER_NICE = 10

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
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=QUEUE_BOUND)
        self._lock = threading.Lock()
        self._tally = Tally()
        self._worker = threading.Thread(target=self._work, name=f"shadow-{name}", daemon=True)
        self._stopped = False

    def start(self) -> None:
        self._worker.start()

    # -- the request path ------------------------------------------------------------------

    def offer(
        self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], seconds: float
    ) -> None:
        """A served request (its inputs, the serving outputs and backend time): queued
        for the shadow if sampled and there is room, else nothing. Never blocks, never
        raises."""
        import numpy as np  # here, not at the top: an idle agent (no model) never loads numpy

        try:
            if self._stopped or not self._sampler.take():
                return
            with self._lock:
                self._tally.sampled += 1
            if self._queue.full():
                self._drop()
                return
            item = (
                {k: np.array(v, copy=True) for k, v in inputs.items()},
                {k: np.array(v, copy=True) for k, v in outputs.items()},
                seconds * 1000.0,
            )
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop()
        except Exception as exc:  # the serving path must never fail because of a shadow
            logger.debug("shadow of %s: offer failed: %s", self.name, exc)

    def _drop(self) -> None:
        with self._lock:
            self._tally.dropped += 1

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run as is
            logger.debug("shadow of %s: cannot lower the worker's priority: %s", self.name, exc)
        with confined(self._cores):
            while (item := self._queue.get()) is not None:
                try:
                    self._run(*item)
                except Exception as exc:  # never let the worker die with its queue filling
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
        """No more requests are taken; the queued ones are compared (for at most
        ``timeout`` seconds: a shadow too slow for that has the rest dropped, counted),
        then the worker ends (once its inference in progress, if any, returns)."""
        self._stopped = True
        if not self._worker.is_alive():
            return
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            logger.warning("shadow of %s: the worker did not drain its queue", self.name)
            while True:  # drop what is left, so that the worker reaches its end
                self._discard()
                try:
                    self._queue.put_nowait(None)
                    break
                except queue.Full:  # an offer that came in just before the stop
                    continue
        self._worker.join(max(0.0, deadline - time.monotonic()))

    def _discard(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._drop()

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
                sampled=t.sampled,
                compared=t.compared,
                dropped=t.dropped,
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
    if f.compared == 0:
        return verdict(True, f"not judged: no traffic ({f.dropped} dropped)")
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
