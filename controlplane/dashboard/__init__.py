"""The dashboard: HTML pages of fleets, devices and rollouts (and rollout actions for
operators) at ``/dashboard``."""

from controlplane.dashboard.routes import root_router, router

__all__ = ["root_router", "router"]
