"""Models that stop being trusted while they serve: a trust update revoked their key."""

from __future__ import annotations

from agent.deployment.bundles import BundleCache
from agent.errors import AgentError
from agent.serving import LoadedModel, ServedModels


def untrusted_models(models: ServedModels, cache: BundleCache) -> list[tuple[LoadedModel, str]]:
    """Each serving model whose installed signature no longer verifies, with the reason."""
    found = []
    for model in models.snapshot():
        try:
            cache.check_still_trusted(model.bundle_digest)
        except AgentError as exc:
            found.append((model, str(exc)))
    return found
