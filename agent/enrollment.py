"""``edge-agent enroll``: give this device its identity from a one-time token.

Loads the device's trust document as the agent does (persisted chain, provisioning
file, or version 1 from the control plane, verified from the pinned roots), then enrolls
(``agent.identity.enroll``): the certificate must come from a device CA that trust
document certifies.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec

from agent.config import AgentConfig
from agent.deployment import BlobFetcher
from agent.errors import AgentConfigError, IdentityError
from agent.identity.enroll import enroll
from agent.identity.files import Identity, IdentityFiles
from agent.trust_store import TrustStore
from model_store import ModelStoreError, load_trusted_keys
from model_store.trust import Role


def open_device_trust(config: AgentConfig, fetch: Callable[[str], bytes]) -> TrustStore:
    """The device's trust store, loaded from disk (``run`` and ``enroll`` share it):
    pinned roots read, ``data_dir`` made; ``AgentConfigError`` in one line if either fails."""
    try:
        roots = load_trusted_keys(config.root_keys)
    except ModelStoreError as exc:
        raise AgentConfigError(f"root_keys: {exc}") from exc
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgentConfigError(f"data_dir {config.data_dir}: {exc.strerror or exc}") from exc
    trust = TrustStore(
        label=config.device_id,
        data_dir=config.data_dir,
        pinned_roots=roots,
        initial_file=config.trust,
        fetch=fetch,
    )
    trust.load_local()
    return trust


def device_ca_keys(trust: TrustStore) -> list[ec.EllipticCurvePublicKey]:
    """The device CAs the trust document certifies (fetching it first if need be)."""
    return list(trust.ensure().keys_for(Role.DEVICE_CA).values())


def enroll_device(config: AgentConfig, token: str, *, force: bool = False) -> Identity:
    files = IdentityFiles(config.data_dir / "identity")
    current = files.load()
    if current is not None and not force:
        raise IdentityError(
            f"{config.device_id} is already enrolled (certificate valid until "
            f"{current.not_after:%Y-%m-%d %H:%M}Z); --force enrolls again with a new key"
        )
    fetcher = BlobFetcher(
        config.control_plane_url,
        deadline_s=config.download_timeout_s,
        stall_s=config.download_stall_timeout_s,
    )
    try:
        trust = open_device_trust(config, fetcher.fetch_document)
        return enroll(
            files,
            control_plane_url=config.control_plane_url,
            device_id=config.device_id,
            token=token,
            ca_keys=device_ca_keys(trust),
        )
    finally:
        fetcher.close()
