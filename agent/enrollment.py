"""``edge-agent enroll``: give this device its identity from a one-time token.

Loads the device's trust document as the agent does (persisted chain, provisioning
file, or version 1 from the control plane, verified from the pinned roots), then enrolls
(``agent.identity.enroll``): the certificate must come from a device CA that trust
document certifies. A short-lived command: it does the keeper's work in its own process
(``agent.keeper.local``).
"""

from __future__ import annotations

from agent.config import AgentConfig
from agent.errors import IdentityError
from agent.identity.files import IdentityFiles
from agent.identity.model import Identity
from agent.keeper.api import KeeperSettings
from agent.keeper.local import LocalKeeper


def enroll_device(config: AgentConfig, token: str, *, force: bool = False) -> Identity:
    files = IdentityFiles(config.data_dir / "identity")
    current = files.load()
    if current is not None and not force:
        raise IdentityError(
            f"{config.device_id} is already enrolled (certificate valid until "
            f"{current.not_after:%Y-%m-%d %H:%M}Z); --force enrolls again with a new key"
        )
    keeper = LocalKeeper(KeeperSettings.of(config))
    try:
        keeper.open_trust()
        return keeper.enroll(token)
    finally:
        keeper.close()
