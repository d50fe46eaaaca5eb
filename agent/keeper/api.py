"""What the agent asks of its keeper (``agent.keeper``), and what a keeper needs to know.

Nothing here imports ``cryptography``: the agent's own process imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.deployment.verifying import BundleVerifier, CommandVerifier

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.deployment.commands import Command
    from agent.identity.model import Identity
    from protocol import SignedEnvelope


@dataclass(frozen=True)
class KeeperSettings:
    """What a keeper needs of the agent's configuration (plain values: they travel to the
    child as JSON)."""

    device_id: str
    data_dir: Path
    root_keys: tuple[Path, ...]
    trust: Path | None
    control_plane_url: str
    download_timeout_s: float
    download_stall_timeout_s: float

    @classmethod
    def of(cls, config: AgentConfig) -> KeeperSettings:
        return cls(
            device_id=config.device_id,
            data_dir=config.data_dir,
            root_keys=tuple(config.root_keys),
            trust=config.trust,
            control_plane_url=config.control_plane_url,
            download_timeout_s=config.download_timeout_s,
            download_stall_timeout_s=config.download_stall_timeout_s,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "data_dir": str(self.data_dir),
            "root_keys": [str(p) for p in self.root_keys],
            "trust": str(self.trust) if self.trust is not None else None,
            "control_plane_url": self.control_plane_url,
            "download_timeout_s": self.download_timeout_s,
            "download_stall_timeout_s": self.download_stall_timeout_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> KeeperSettings:
        trust = data["trust"]
        roots = data["root_keys"]
        assert isinstance(roots, list)
        return cls(
            device_id=str(data["device_id"]),
            data_dir=Path(str(data["data_dir"])),
            root_keys=tuple(Path(str(p)) for p in roots),
            trust=Path(str(trust)) if trust is not None else None,
            control_plane_url=str(data["control_plane_url"]),
            download_timeout_s=float(str(data["download_timeout_s"])),
            download_stall_timeout_s=float(str(data["download_stall_timeout_s"])),
        )


class Keeper(BundleVerifier, CommandVerifier, Protocol):
    """The agent's trust document, its identity, and every public-key operation.

    Errors are the agent's own (``agent.errors``), with the messages of the operations
    they wrap; a keeper that cannot run at all raises ``KeeperUnavailable`` (transient).
    """

    @property
    def trust_version(self) -> int:
        """Version of the current trust document (0 before there is one)."""
        ...

    @property
    def refused_trust(self) -> int:
        """Trust documents refused so far (forged, skipping, expired, unavailable)."""
        ...

    def open_trust(self) -> None:
        """Load the persisted chain and/or the provisioning file (``AgentConfigError``)."""
        ...

    def ensure_trust(self) -> int:
        """The current version, fetching version 1 first if there is none
        (``TrustStoreError`` / ``TrustFetchError``)."""
        ...

    def offer_trust(self, raw: bytes) -> bool:
        """A trust document from the trust topic; True if the current one changed."""
        ...

    def verify_command(self, envelope: SignedEnvelope, *, device_id: str, now: datetime) -> Command:
        """``agent.deployment.commands.verify_command`` with the current trust."""
        ...

    def load_identity(self) -> Identity | None:
        """The enrolled identity (None: not enrolled; ``IdentityError``: unusable)."""
        ...

    def enroll(self, token: str) -> Identity:
        """Enroll with a one-time token (``IdentityError``)."""
        ...

    def renew(self, identity: Identity) -> Identity:
        """A fresh certificate for the enrolled key (``AgentError``)."""
        ...

    def seal_signed(self, stream: str, seq: int, body: bytes) -> bytes:
        """A report signed with the device key: only until the control plane gives the
        device a report key (older control planes), after which reports are MACed."""
        ...

    def close(self) -> None:
        """Release what the keeper holds (the child process, if any)."""
        ...
