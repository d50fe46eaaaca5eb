"""The control plane's schema migrations (Alembic): ``versions/`` holds one revision per
schema change, applied at start-up and by ``edgefleet-controlplane migrate``
(``controlplane.migrate``)."""
