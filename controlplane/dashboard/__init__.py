"""The dashboard: read-only HTML pages of fleets, devices and rollouts at ``/dashboard``."""

from controlplane.dashboard.routes import root_router, router

__all__ = ["root_router", "router"]
