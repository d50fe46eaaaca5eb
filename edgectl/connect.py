"""One place where a command turns its parsed arguments into a control-plane client."""

from __future__ import annotations

import argparse

from edgectl.client import ControlPlaneClient


def connect(args: argparse.Namespace) -> ControlPlaneClient:
    """A client on ``--url`` (``EDGECTL_URL``, config file) with the operator's token."""
    return ControlPlaneClient(args.url, token=getattr(args, "token", None))
