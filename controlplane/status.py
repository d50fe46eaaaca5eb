"""Where a deployment stands on one device: pure rules, no database.

A target's status moves on two kinds of evidence:

* **DeploymentEvents** (:func:`after_event`): one step of the lifecycle, in order
  ``pending < received < downloaded < verified < activated = failed``. An event never moves
  a target backwards (QoS 1 may repeat or reorder them); between ``activated`` and
  ``failed`` the later event wins. ``retrying`` (a step failed, the agent tries again by
  itself) is not an outcome: it replaces any status but ``activated`` and ``failed``,
  and the next step of the retry (``received`` or later) replaces it.
* **StateReports** (:func:`after_report`): events sent while a device was offline may be
  lost, so the status is also *re-derived* from the device's full state. A report that says
  the device processed the target's generation (or a later one) settles the target:
  ``activated`` if the device runs the deployment's bundle; otherwise ``failed`` with the
  report's ``last_error`` if the target is the one that generation is about (a
  ``retrying`` target only when the device reports itself ``failed``). A derived
  ``failed`` never overrides ``activated``; a derived ``activated`` may replace ``failed``
  (the agent retries transient failures of the same generation).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from controlplane.models import TARGET_PROGRESS, TargetStatus


@dataclass(frozen=True)
class TargetView:
    """What the rules need to know about one deployment target."""

    generation: int
    bundle_digest: str
    status: TargetStatus
    reason: str | None = None


@dataclass(frozen=True)
class ReportView:
    """What the rules need to know about one state report."""

    generation: int
    active_digests: Collection[str]
    last_error: str | None = None
    #: the device says it is ``failed`` (not retrying): only then does a ``retrying``
    #: target become ``failed`` from a report
    gave_up: bool = True
    #: the agent says its last generation failed transiently and it tries again by
    #: itself (``StateReport.retrying``): ``last_error`` is not an outcome
    retrying: bool = False


@dataclass(frozen=True)
class Change:
    status: TargetStatus
    reason: str | None


#: Statuses that are an outcome: ``retrying`` never replaces them.
SETTLED = frozenset({TargetStatus.ACTIVATED, TargetStatus.FAILED})


def after_event(target: TargetView, kind: TargetStatus, reason: str | None = None) -> Change | None:
    """The change a DeploymentEvent of ``kind`` makes, or None if it is stale."""
    if kind is TargetStatus.RETRYING:
        if target.status in SETTLED:
            return None  # a late retry notice: the outcome is known
    elif TARGET_PROGRESS[kind] < TARGET_PROGRESS[target.status]:
        return None
    if (kind, reason) == (target.status, target.reason):
        return None
    return Change(kind, reason)


def after_report(target: TargetView, report: ReportView, *, current: bool) -> Change | None:
    """The change a StateReport makes to ``target``, or None.

    ``current`` says the target has the highest generation of the device's targets that
    the report covers (``target.generation <= report.generation``): the report's
    ``last_error`` is about that one. Older targets were superseded before the device got
    to them; the report can still show they run, never that they failed.
    """
    if report.generation < target.generation:
        return None  # the device has not processed this generation yet
    if target.bundle_digest in report.active_digests:
        if target.status is TargetStatus.ACTIVATED:
            return None
        return Change(TargetStatus.ACTIVATED, None)
    if not current or not report.last_error:
        return None
    if target.status in SETTLED:
        return None  # settled; only an event may say an activated deployment failed
    if report.retrying:  # not an outcome: the agent's next try (or the deadline) is
        if target.status is TargetStatus.RETRYING:
            return None
        return Change(TargetStatus.RETRYING, report.last_error)
    if target.status is TargetStatus.RETRYING and not report.gave_up:
        return None  # the agent is still at it: its outcome (or the deadline) settles it
    return Change(TargetStatus.FAILED, report.last_error)


def after_removal(target: TargetView, *, gone: bool) -> Change | None:
    """The change a StateReport covering an undeploy's target makes: ``activated`` once
    the device no longer runs the model (``gone``); nothing otherwise (the device
    deadline judges a device that keeps it)."""
    if not gone or target.status is TargetStatus.ACTIVATED:
        return None
    return Change(TargetStatus.ACTIVATED, None)


#: How far above the highest generation this control plane signed a device's reported
#: generation is still believed (a database restored from a backup lags the devices).
REPORT_LEAD_LIMIT = 2**20


def generation_floor(*, signed: int, reported: int) -> int:
    """The generation a new command for a device must exceed.

    What we signed, or what the device reports when that is plausibly ours. A report far
    beyond anything signed is ignored: anyone able to publish on a device's state topic
    could otherwise make us sign the maximum generation and lock the device out for good.
    """
    if reported > signed + REPORT_LEAD_LIMIT:
        return signed
    return max(signed, reported)
