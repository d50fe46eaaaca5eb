"""A rollout's shadow periods as its devices reported them: each device's latest figures
for the rollout's model at the rollout's version (``Device.shadows``, from its state
reports), and each batch's summary (``ShadowBatchPublic``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from sqlmodel import Session, col, select

from controlplane.models import Device, Rollout, RolloutDevice
from controlplane.schemas import BatchPublic, ShadowBatchPublic
from protocol import ShadowFigures, ShadowVerdict


def device_shadows(
    session: Session, rollout: Rollout, rows: Sequence[RolloutDevice]
) -> dict[str, ShadowFigures]:
    """Each device's latest shadow period of ``rollout``'s version, by device id (one query)."""
    ids = sorted({row.device_id for row in rows})
    if not ids:
        return {}
    found: dict[str, ShadowFigures] = {}
    statement = select(Device.id, Device.shadows).where(col(Device.id).in_(ids))
    for device_id, shadows in session.exec(statement).all():
        for entry in shadows or []:
            if entry.get("name") != rollout.model or entry.get("version") != rollout.version:
                continue
            try:
                found[device_id] = ShadowFigures.model_validate(entry)
            except ValidationError:  # stored by an older release: shown without it
                continue
    return found


def batch_shadow(figures: Iterable[ShadowFigures]) -> ShadowBatchPublic | None:
    """One batch's shadow periods summed up (None: none reported)."""
    shown = list(figures)
    if not shown:
        return None
    verdicts = [f.verdict for f in shown]
    agreements = [f.agreement_pct for f in shown if f.agreement_pct is not None]
    timed = [f for f in shown if f.shadow_p99_ms is not None]
    slowest = max(timed, key=lambda f: f.shadow_p99_ms or 0.0, default=None)
    return ShadowBatchPublic(
        devices=len(shown),
        running=verdicts.count(ShadowVerdict.RUNNING),
        passed=verdicts.count(ShadowVerdict.PASSED),
        failed=verdicts.count(ShadowVerdict.FAILED),
        min_agreement_pct=min(agreements, default=None),
        worst_shadow_p99_ms=slowest.shadow_p99_ms if slowest is not None else None,
        serving_p99_ms=slowest.serving_p99_ms if slowest is not None else None,
    )


def with_shadows(
    batches: Sequence[BatchPublic],
    rows: Sequence[RolloutDevice],
    by_device: dict[str, ShadowFigures],
) -> list[BatchPublic]:
    """``batches`` with their shadow summaries."""
    out = []
    for batch in batches:
        ids = [r.device_id for r in rows if r.batch == batch.index and r.device_id in by_device]
        summary = batch_shadow(by_device[i] for i in ids)
        out.append(batch.model_copy(update={"shadow": summary}) if summary else batch)
    return out
