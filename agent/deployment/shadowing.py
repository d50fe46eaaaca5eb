"""The ``shadowing`` lifecycle state's work: a new version run as the shadow of the
serving one for its deployment's period, then judged (``agent.serving.shadow``).

The shadow is attached to the serving model (``ServedModels.attach_shadow``), so sampled
live requests reach it off the request path; the live figures are reported every
``SHADOW_REPORT_S`` and the judged ones at the end (``ServedModels.shadows``, the state
report's ``shadows``). A period that ends early (the agent stops, or a newer deployment
command waits) is recorded unjudged and fails the assignment; a failed gate is
``ShadowGateFailed``. Either way the serving version serves on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from agent.errors import AgentError, ShadowGateFailed
from agent.runners.base import Runner
from agent.serving import LoadedModel, ServedModels
from agent.serving.shadow import Shadow, judge
from protocol import ModelAssignment, ShadowVerdict

logger = logging.getLogger(__name__)

#: how often a running period's figures are reported (s), and checked for a stop (s)
SHADOW_REPORT_S = 10.0
SHADOW_TICK_S = 0.2


class StateReporter(Protocol):
    def state_changed(self) -> None: ...


@dataclass
class ShadowPeriod:
    models: ServedModels
    reporter: StateReporter
    stopping: Callable[[], bool]
    superseded: Callable[[], bool]

    def run(self, a: ModelAssignment, runner: Runner, current: LoadedModel, *, label: str) -> None:
        """Shadow ``current`` with ``runner`` for ``a.shadow``'s period, then judge it."""
        spec = a.shadow
        assert spec is not None
        shadow = Shadow(
            name=a.name,
            version=a.version,
            serving_version=current.version,
            runner=runner,
            spec=spec,
            deployment_id=a.deployment_id,
            cores=current.share.cores if current.share is not None else None,
            started_at=datetime.now(UTC),
        )
        board = self.models.shadows
        start = time.monotonic()
        shadow.start()
        try:  # from here on, the worker is stopped and the board told whatever happens
            board.running(shadow)
            self.models.attach_shadow(shadow)  # ModelNotFound if the model went meanwhile
            logger.info(
                "%s: shadowing %s for %gs on %g%% of requests",
                label,
                current.version,
                spec.duration_s,
                spec.sample * 100,
            )
            self._wait(spec.duration_s)
        except Exception as exc:  # ended early: shown as such, never judged
            ended = shadow.figures(elapsed_s=time.monotonic() - start)
            update = {"verdict": ShadowVerdict.FAILED, "reason": f"not judged: {exc}"}
            board.finished(ended.model_copy(update=update))
            raise
        finally:
            self.models.detach_shadow(shadow)
            shadow.stop()
        figures = judge(shadow.figures(elapsed_s=time.monotonic() - start), spec)
        board.finished(figures)
        self.reporter.state_changed()
        logger.info(
            "%s: shadow %s: %s (%d compared, %d dropped; p50 %s ms, serving %s ms)",
            label,
            figures.verdict,
            figures.reason or "ok",
            figures.compared,
            figures.dropped,
            _ms(figures.shadow_p50_ms),
            _ms(figures.serving_p50_ms),
        )
        if figures.verdict == ShadowVerdict.FAILED:
            raise ShadowGateFailed(figures.reason or "shadow gate failed")

    def _wait(self, seconds: float) -> None:
        """Wait out the period, reporting the live figures every ``SHADOW_REPORT_S``;
        AgentError if the agent stops or a newer deployment command waits."""
        start = reported = time.monotonic()
        self.reporter.state_changed()
        while (left := seconds - (time.monotonic() - start)) > 0:
            if self.stopping():
                raise AgentError("the agent stopped during the shadow period")
            if self.superseded():
                raise AgentError(
                    "a newer deployment command arrived during the shadow period: not switched"
                )
            time.sleep(min(SHADOW_TICK_S, left))
            if time.monotonic() - reported >= SHADOW_REPORT_S:
                self.reporter.state_changed()
                reported = time.monotonic()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
