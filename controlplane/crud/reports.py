"""Writes for what devices report: state, deployment events, heartbeats, availability.

Each function is one ingested message and commits it. Deployment target statuses move by
the pure rules of :mod:`controlplane.status`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from controlplane.crud.catalog import (
    assign,
    get_or_create_fleet,
    get_target,
    latest_deployments,
    needs_assignment,
)
from controlplane.crud.device_models import device_memory, device_models
from controlplane.crud.variants import with_default_digests
from controlplane.models import (
    Deployment,
    DeploymentTarget,
    Device,
    ModelVersion,
    TargetStatus,
    utcnow,
)
from controlplane.rollouts.late import follow_late_activation
from controlplane.status import (
    REPORT_LEAD_LIMIT,
    Change,
    ReportView,
    TargetView,
    after_event,
    after_removal,
    after_report,
)
from controlplane.timeline import DeviceEvent, record_changes, record_deployment, record_link
from protocol import DeploymentEvent, DeviceStatus, StateReport

logger = logging.getLogger(__name__)


def _set(target: DeploymentTarget, change: Change) -> None:
    target.status = change.status.value
    target.reason = change.reason
    target.updated_at = utcnow()


def _view(target: DeploymentTarget, bundle_digest: str) -> TargetView:
    return TargetView(
        generation=target.generation,
        bundle_digest=bundle_digest,
        status=TargetStatus(target.status),
        reason=target.reason,
    )


#: A device's deployment targets as ``derive_targets`` reads them: the target, its bundle
#: digest, its model, and whether it is an undeploy; newest generation first.
TargetRow = tuple[DeploymentTarget, str, str, bool]


def target_rows(session: Session, device_ids: Collection[str]) -> dict[str, list[TargetRow]]:
    """Every deployment target of ``device_ids`` (one query), by device, newest first."""
    found: dict[str, list[TargetRow]] = {d: [] for d in device_ids}
    if not found:
        return found
    rows = session.exec(
        select(DeploymentTarget, ModelVersion.bundle_digest, ModelVersion.model, Deployment.remove)
        .join(Deployment, col(Deployment.id) == col(DeploymentTarget.deployment_id))
        .join(ModelVersion, col(ModelVersion.id) == col(Deployment.model_version_id))
        .where(col(DeploymentTarget.device_id).in_(sorted(found)))
        .order_by(col(DeploymentTarget.device_id), col(DeploymentTarget.generation).desc())
    )
    for target, digest, model, remove in rows:
        found[target.device_id].append((target, digest, model, bool(remove)))
    return found


@dataclass
class StateReads:
    """What a batch of state reports reads once: its devices' targets (``target_rows``),
    the default digests of the bundles they run (``with_default_digests``) and each
    fleet's latest settled deployments by (fleet, labels) (``latest_deployments``)."""

    targets: dict[str, list[TargetRow]] = field(default_factory=dict)
    digests: dict[frozenset[str], set[str]] = field(default_factory=dict)
    latest: dict[tuple[str, str], list[Deployment]] = field(default_factory=dict)


def derive_targets(
    session: Session,
    *,
    device_id: str,
    report: StateReport,
    rows: Sequence[TargetRow] | None = None,
    digests: dict[frozenset[str], set[str]] | None = None,
) -> int:
    """Re-derive the device's target statuses from its state report; how many changed.

    Covers the targets whose generation the report says the device processed, so a
    deployment whose events were lost still ends ``activated`` or ``failed``. ``rows``:
    the device's targets a batch read already (``target_rows``); ``digests``: a batch's
    cache of ``with_default_digests``.
    """
    if rows is None:
        rows = target_rows(session, [device_id])[device_id]
    rows = [r for r in rows if r[0].generation <= report.generation]
    active = _default_digests(session, {m.bundle_digest for m in report.active}, digests)
    changed = 0
    seen_models: set[str] = set()
    running = {m.name for m in report.active}
    for target, bundle_digest, model, remove in rows:
        # the newest target of each model that the report covers is the one its
        # failure (if any) is about; older ones of that model were superseded
        current = model not in seen_models
        seen_models.add(model)
        if remove:  # an undeploy is done once the device no longer runs the model
            change = after_removal(_view(target, bundle_digest), gone=model not in running)
        else:
            change = after_report(
                _view(target, bundle_digest), report_view(report, model, active), current=current
            )
        if change is None:
            continue
        logger.info(
            "deployment %s on %s: %s from state report (generation %s)",
            target.deployment_id,
            device_id,
            change.status.value,
            report.generation,
        )
        _set(target, change)
        session.add(target)
        follow_late_activation(session, target=target, now=utcnow())
        changed += 1
    return changed


def _default_digests(
    session: Session, given: set[str], cache: dict[frozenset[str], set[str]] | None
) -> set[str]:
    key = frozenset(given)
    if cache is not None and key in cache:
        return set(cache[key])
    found = with_default_digests(session, digests=given)
    if cache is not None:
        cache[key] = set(found)
    return found


def report_view(report: StateReport, model: str, active: Collection[str]) -> ReportView:
    """What ``report`` says about ``model``: its own failure (``StateReport.failures``);
    from an agent that reports none, the report's ``last_error`` covers every model."""
    if report.failures:
        failure = next((f for f in report.failures if f.name == model), None)
        return ReportView(
            generation=report.generation,
            active_digests=active,
            last_error=failure.reason if failure else None,
            gave_up=failure is not None and not failure.retrying,
            retrying=failure is not None and failure.retrying,
        )
    return ReportView(
        generation=report.generation,
        active_digests=active,
        last_error=report.last_error,
        gave_up=report.status is DeviceStatus.FAILED and not report.retrying,
        retrying=report.retrying,
    )


def selections(report: StateReport) -> dict[str, dict[str, Any]]:
    """How each active model's backend was chosen, by model name (models whose report
    carries no selection, e.g. from an older agent, are left out)."""
    found: dict[str, dict[str, Any]] = {}
    for model in report.active:
        if model.selection is None:
            continue
        found[model.name] = {
            "version": model.version,
            "bundle_digest": model.bundle_digest,
            "backend": model.backend,
            **model.selection.model_dump(mode="json"),
        }
    return found


def apply_state_report(
    session: Session,
    *,
    device_id: str,
    report: StateReport,
    retained: bool,
    now: datetime | None = None,
    locked: Device | None = None,
    reads: StateReads | None = None,
) -> tuple[Device, bool]:
    """Upsert ``device_id`` from its report; (device, True) if it was just given a deployment
    (whose command the caller publishes once it committed).

    A new device is registered in the fleet the report names (created if new); a known
    device stays in its fleet whatever the report says (the control plane owns fleet
    membership). Its selection reports are
    replaced by this report's. Its deployment targets are re-derived from the report. If
    the fleet's latest settled deployment of a model that applies to the device
    (``latest_deployments``: all at once, or a completed rollout whose selector its labels
    match) is newer than any of the fleet's deployments of that model the device is a
    target of, the device is assigned to it
    (so a device in a rollout's pending batch waits for its batch). A retained report
    replayed by the broker at subscription time does not mark the device online.
    """
    now = now or utcnow()
    # ``locked``: ingestion loaded and locked it in this transaction to authenticate the
    # report (moving its replay window); reading it again would flush that and re-select
    device = locked or session.get(Device, device_id, with_for_update=True)
    if device is None:
        get_or_create_fleet(session, name=report.fleet)
        device = Device(id=device_id, fleet=report.fleet)
    if not retained:
        device.online = True
    before = (device.status, device.last_error, dict(device.selections or {}))
    device.status = report.status.value
    device.agent_version = report.agent_version
    first = report.active[0] if report.active else None
    device.active_model = first.name if first else None
    device.active_version = first.version if first else None
    device.active_bundle_digest = first.bundle_digest if first else None
    device.backend = first.backend if first else None
    if report.generation > device.generation + REPORT_LEAD_LIMIT:
        logger.warning(
            "device %s reports generation %s, far beyond the %s signed for it: not believed",
            device_id,
            report.generation,
            device.generation,
        )
    device.reported_generation = report.generation
    device.last_error = report.last_error
    device.local_api = report.local_api
    device.hardware = dict(report.hardware)
    device.profile, device.runtimes = report.profile, list(report.runtimes)
    if report.profile and "hw" not in device.labels:
        device.labels = {**device.labels, "hw": report.profile}  # a new dict: JSON changed
    device.selections = selections(report)
    record_changes(
        session,
        device_id=device_id,
        at=now,
        status=(before[0], device.status),
        error=(before[1], device.last_error),
        selections=(before[2], device.selections),
    )
    device.models, device.memory = device_models(report), device_memory(report)
    if report.shadows or device.shadows:
        device.shadows = [f.model_dump(mode="json") for f in report.shadows]
    device.last_report_at = min(report.reported_at, now)
    device.last_seen_at = now
    session.add(device)
    # a new device (or a target assigned earlier in a batch): rows to insert (timeline
    # entries wait for the batch's one flush: nothing reads them back)
    if any(not isinstance(row, DeviceEvent) for row in session.new):
        session.flush()
    assigned = False
    # the device row's update waits for the commit (a batch writes them together): no
    # query below reads it
    with session.no_autoflush:
        derive_targets(
            session,
            device_id=device_id,
            report=report,
            rows=reads.targets.get(device_id) if reads else None,
            digests=reads.digests if reads else None,
        )
        # Only a settled deployment (all at once, or a completed rollout whose selector
        # the device matches): a device in a rollout's pending batch waits for its batch.
        # Each model separately: a device that missed model B's deployment gets it
        # whatever it runs of model A.
        for deployment in reversed(_latest(session, device, reads.latest if reads else None)):
            if deployment.id is not None and needs_assignment(
                session, device_id=device_id, deployment=deployment
            ):
                assigned = (
                    assign(session, device=device, deployment=deployment) is not None or assigned
                )
    session.add(device)  # the caller commits (ingestion: one report or a batch)
    return device, assigned


def _latest(
    session: Session, device: Device, cache: dict[tuple[str, str], list[Deployment]] | None
) -> list[Deployment]:
    """``latest_deployments`` for the device's fleet and labels, read once per ``cache``."""
    labels = device.labels or {}
    key = (device.fleet, json.dumps(labels, sort_keys=True))
    if cache is not None and key in cache:
        return cache[key]
    found = latest_deployments(session, fleet=device.fleet, labels=labels)
    if cache is not None:
        cache[key] = found
    return found


def set_availability(session: Session, *, device_id: str, online: bool) -> bool:
    """Record a device's availability; False if the device is not registered yet."""
    device = session.get(Device, device_id)
    if device is None:
        return False
    if device.online != online:
        record_link(session, device_id=device_id, at=utcnow(), online=online)
    device.online = online
    device.last_seen_at = utcnow() if online else device.last_seen_at
    session.add(device)
    session.commit()
    return True


def apply_event(
    session: Session,
    *,
    device_id: str,
    event: DeploymentEvent,
    targets: Mapping[tuple[int, str], DeploymentTarget] | None = None,
) -> bool:
    """Move a deployment target forward; False if there is no such target. ``targets``:
    rows a batch loaded and locked already (by deployment id and device id)."""
    if event.deployment_id is None:
        return False
    # locked: replicas share the reports, and progress must not go backwards
    target = (targets or {}).get((event.deployment_id, device_id)) or get_target(
        session, deployment_id=event.deployment_id, device_id=device_id, lock=True
    )
    if target is None:
        return False
    record_deployment(
        session,
        device_id=device_id,
        at=min(event.at, utcnow()),
        kind=event.kind.value,
        model=event.model_name,
        version=event.model_version,
        deployment_id=event.deployment_id,
        reason=event.reason,
    )
    current = TargetView(
        generation=target.generation,
        bundle_digest="",
        status=TargetStatus(target.status),
        reason=target.reason,
    )
    change = after_event(current, TargetStatus(event.kind.value), event.reason)
    if change is not None:
        _set(target, change)
        session.add(target)
        follow_late_activation(session, target=target, now=utcnow())
    return True  # the caller commits (ingestion: one report or a batch)
