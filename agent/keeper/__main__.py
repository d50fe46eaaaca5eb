"""``python -m agent.keeper``: the keeper child (``agent.keeper.serve``)."""

from agent.keeper.serve import main

raise SystemExit(main())
