"""edgectl: the operator CLI.

It talks to the control plane over HTTP only and signs bundles locally, on the
operator's machine, so the server never holds a release key.

Public surface: ``main`` (console script), ``ControlPlaneClient``, ``push_model``,
``EdgectlError``.
"""

from edgectl.client import ControlPlaneClient
from edgectl.errors import EdgectlError
from edgectl.push import push_model

__all__ = ["ControlPlaneClient", "EdgectlError", "push_model"]
