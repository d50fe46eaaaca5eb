"""A device of a completed rollout that activates after all: its row follows.

A rollout completes once every device of its last batch finished, a ``failed`` one
included. An agent that retries by itself may still get there afterwards (an older
agent reports ``failed`` for a failure it then retries; a device past its deadline may
finish). Ingestion calls :func:`follow_late_activation` whenever a deployment target
becomes ``activated``: if the target belongs to a completed rollout's deployment and the
device's row says ``failed``, the row becomes ``activated`` (noted "activated after the
rollout completed: not judged by the gate"), the history gets ``device_recovered`` and
the rollout's summary is recomputed, so the rollout record, the deployment summary and
the device view agree. Nothing here decides anything for a running rollout: the driver
does that (:mod:`controlplane.rollouts.policy`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session, select

from controlplane.models import Deployment, DeploymentTarget, Rollout, RolloutDevice, TargetStatus
from controlplane.rollouts.policy import RolloutDeviceStatus, summary
from controlplane.rollouts.rows import note, wanted
from controlplane.rollouts.states import RolloutState

logger = logging.getLogger(__name__)

#: The reason a row that activated after its rollout completed carries.
LATE = "activated after the rollout completed: not judged by the gate"


def follow_late_activation(session: Session, *, target: DeploymentTarget, now: datetime) -> bool:
    """Move the failed row of a completed rollout whose target just activated (not
    committed); whether it did."""
    if target.status != TargetStatus.ACTIVATED.value:
        return False
    deployment = session.get(Deployment, target.deployment_id)
    if deployment is None or deployment.rollout_id is None:
        return False
    rollout = session.get(Rollout, deployment.rollout_id)
    if rollout is None or rollout.state != RolloutState.COMPLETED.value:
        return False
    rows = session.exec(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout.id)).all()
    row = next((r for r in rows if r.device_id == target.device_id), None)
    if row is None or row.status != RolloutDeviceStatus.FAILED.value:
        return False
    if wanted(rollout, row) != deployment.model_version_id:
        return False  # not the version the rollout sent this device
    row.status, row.reason = RolloutDeviceStatus.ACTIVATED.value, LATE
    row.activated_at = row.updated_at = now
    session.add(row)
    rollout.reason = summary(RolloutDeviceStatus(r.status) for r in rows)
    note(rollout, "device_recovered", f"{row.device_id}: {LATE}", now)
    session.add(rollout)
    logger.info("rollout %s: %s %s", rollout.id, row.device_id, LATE)
    return True
