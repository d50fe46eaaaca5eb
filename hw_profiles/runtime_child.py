"""``python -m hw_profiles.runtime_child``: print the installed runtimes' facts as one JSON
line (``hw_profiles.runtimes.probe_runtimes`` runs it, so its caller never imports them).
"""

from __future__ import annotations

import json
import sys

from hw_profiles.runtimes import probe_runtimes_here


def main() -> int:
    facts = probe_runtimes_here()
    sys.stdout.write(json.dumps(facts.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
