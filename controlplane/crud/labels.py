"""Writes for device labels (keyword-only; see :mod:`controlplane.crud`).

Keys and values are checked by :mod:`controlplane.selectors` (the API's
schemas already refuse bad ones with 422; this is the last line for other callers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel import Session

from controlplane.errors import InvalidRequest, NotFound
from controlplane.models import Device
from controlplane.selectors import check_label, check_labels

#: More labels than this on one device is a mistake (a selector is a handful).
MAX_LABELS = 64


def update_labels(
    session: Session, *, device_id: str, set_labels: Mapping[str, str], remove: Sequence[str]
) -> Device:
    """Set (or overwrite) ``set_labels`` and drop ``remove`` on a device (committed).

    NotFound for an unknown device; InvalidRequest for a key both set and removed, a bad
    key or value, or more than :data:`MAX_LABELS` labels. Removing an absent key is fine.
    """
    device = session.get(Device, device_id, with_for_update=True, populate_existing=True)
    if device is None:
        raise NotFound(f"unknown device {device_id!r}")
    both = sorted(set(set_labels) & set(remove))
    if both:
        raise InvalidRequest(f"label {both[0]!r} is both set and removed")
    try:
        wanted = check_labels(set_labels)
        gone = {check_label(key, "label key") for key in remove}
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    labels = {k: v for k, v in (device.labels or {}).items() if k not in gone} | wanted
    if len(labels) > MAX_LABELS:
        raise InvalidRequest(f"a device may carry at most {MAX_LABELS} labels")
    device.labels = labels
    session.add(device)
    session.commit()
    session.refresh(device)
    return device
