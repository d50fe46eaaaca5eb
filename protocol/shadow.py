"""Shadow evaluation on the wire: what a deployment asks for, what the agent reports.

A deployment may ask for a shadow period (``ShadowSpec``, in its signed
``ModelAssignment``): the new version loads beside the serving one and runs a copy of a
sampled share of live requests, off the request path, for ``duration_s``; answers always
come from the serving version. Then the agent judges the figures against the spec's gate
(``min_agreement_pct``, ``max_latency_ratio`` and ``latency_floor_ms``): it switches (the
normal activation), or fails the assignment with a reason that starts with
``SHADOW_GATE_PREFIX`` (the rollout treats it as a gate regression). The figures travel
in ``StateReport.shadows`` as ``ShadowFigures``, live while the period runs and final once it ended.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from protocol.fields import Count, ErrorText, Name, NonNegative, Percent, RowId, WireMessage

#: The reason of a deployment failed by the shadow gate starts with this.
SHADOW_GATE_PREFIX = "shadow gate:"
#: A shadow period lasts at most a week.
MAX_SHADOW_S = 7 * 24 * 3600.0
#: the largest latency ratio and floor a shadow gate takes
MAX_LATENCY_RATIO = 1000.0
MAX_LATENCY_FLOOR_MS = 60_000.0


class ShadowSpec(WireMessage):
    """A deployment's shadow period and its gate (None: no gate on that figure)."""

    duration_s: float = Field(gt=0, le=MAX_SHADOW_S)
    #: share of live requests copied to the shadow, 0 < sample <= 1
    sample: float = Field(gt=0, le=1)
    #: agreement (%) the shadow must reach over the compared requests
    min_agreement_pct: Percent | None = None
    #: the shadow's p50 may be at most this times the serving version's (p99 is reported,
    #: not gated: the shadow runs at a lower priority, its tail is scheduling)
    max_latency_ratio: float | None = Field(default=None, ge=1, le=MAX_LATENCY_RATIO)
    #: a p50 above the ratio fails only when it is also this many ms above it
    latency_floor_ms: float = Field(default=0.5, ge=0, le=MAX_LATENCY_FLOOR_MS)


class ShadowVerdict(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


class ShadowFigures(WireMessage):
    """One shadow period on a device: agreement and latency of the shadow (``version``)
    against the serving version (``serving_version``) on the same sampled requests.

    ``agreement_pct``: compared requests on which the shadow agreed (same top-1 on every
    row of a distribution output, every other float output within the relative
    tolerance, integer outputs equal). Deviations are relative to the serving output's
    scale (its largest magnitude, with an absolute floor). ``top1_agreement_pct``: rows
    of distribution outputs (``[batch, classes]`` probabilities) with the same top-1
    class (None: no such output).
    ``dropped``: sampled requests not compared because the shadow's queue was full (or
    still queued when a shadow too slow to drain it within its stop's timeout ended).
    """

    name: Name
    version: Name
    serving_version: Name
    deployment_id: RowId | None = None
    started_at: datetime
    duration_s: NonNegative
    sample: float = Field(gt=0, le=1)
    verdict: ShadowVerdict = ShadowVerdict.RUNNING
    reason: ErrorText | None = None
    sampled: Count = 0
    compared: Count = 0
    dropped: Count = 0
    errors: Count = 0
    agreement_pct: Percent | None = None
    top1_agreement_pct: Percent | None = None
    max_deviation: NonNegative | None = None
    mean_deviation: NonNegative | None = None
    shadow_p50_ms: NonNegative | None = None
    shadow_p99_ms: NonNegative | None = None
    serving_p50_ms: NonNegative | None = None
    serving_p99_ms: NonNegative | None = None
