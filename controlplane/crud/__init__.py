"""Every database write of the control plane, as keyword-only functions.

Functions flush but commit only where they finish a unit of work (the caller's request
or ingested message). Reads that only build answers live in :mod:`controlplane.views`.

``catalog``: fleets, model versions, deployments. ``reports``: what devices report.
``pins``: operator backend pins on fleets and devices, re-selections on devices.
"""

from controlplane.crud.catalog import (
    assign,
    create_deployment,
    create_model_version,
    get_fleet,
    get_model_version,
    get_or_create_fleet,
    get_target,
    latest_deployments,
    list_fleets,
    list_models,
)
from controlplane.crud.heartbeats import apply_heartbeat
from controlplane.crud.pins import request_reselect, set_device_pin, set_fleet_pin
from controlplane.crud.reports import (
    apply_event,
    apply_state_report,
    derive_targets,
    set_availability,
)

__all__ = [
    "apply_event",
    "apply_heartbeat",
    "apply_state_report",
    "assign",
    "create_deployment",
    "create_model_version",
    "derive_targets",
    "get_fleet",
    "get_model_version",
    "get_or_create_fleet",
    "get_target",
    "latest_deployments",
    "list_fleets",
    "list_models",
    "request_reselect",
    "set_availability",
    "set_device_pin",
    "set_fleet_pin",
]
