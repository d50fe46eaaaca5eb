"""``python -m controlplane`` runs the control plane (same as ``edgefleet-controlplane``)."""

import sys

from controlplane.cli import main

sys.exit(main())
