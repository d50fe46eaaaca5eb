"""Models that stop being trusted while they serve: a trust update revoked their key."""

from __future__ import annotations

from agent.deployment.book import Book
from agent.deployment.bundles import BundleCache
from agent.errors import AgentError, KeeperUnavailable
from agent.serving import LoadedModel, ServedModels


def untrusted_models(models: ServedModels, cache: BundleCache) -> list[tuple[LoadedModel, str]]:
    """Each serving model whose installed signature no longer verifies, with the reason.

    ``KeeperUnavailable`` (the keeper could not check, ``agent.keeper``) is raised: it
    says nothing about the model, which keeps serving."""
    found = []
    for model in models.snapshot():
        try:
            cache.check_still_trusted(model.bundle_digest)
        except KeeperUnavailable:
            raise
        except AgentError as exc:
            found.append((model, str(exc)))
    return found


def retire_untrusted(models: ServedModels, cache: BundleCache, book: Book) -> list[str]:
    """Stop serving (and drop from the pointer) each model ``untrusted_models`` names;
    one line per model saying why."""
    messages = []
    for model, reason in untrusted_models(models, cache):
        models.remove(model.name)
        book.pointer.pop(model.name, None)
        messages.append(f"stopped serving {model.name} {model.version}: {reason}")
    return messages
