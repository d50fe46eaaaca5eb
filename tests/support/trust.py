"""A ready-made root of trust for tests: key pairs for each role and a signed v1 document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from model_store import build_trust_document, load_private_key, load_public_key, write_keypair


@dataclass
class TrustKit:
    """Paths of root, release and control-plane key pairs and of ``trust_file``.

    ``trust_file`` holds the wire bytes of trust document version 1, signed by the root
    key, certifying ``release_pub`` for the release role and ``cp_pub`` for the
    control-plane role and ``device_ca_pub`` for the device-ca role, expiring 365 days
    after it was made.
    """

    dir: Path
    root_key: Path
    root_pub: Path
    release_key: Path
    release_pub: Path
    cp_key: Path
    cp_pub: Path
    device_ca_key: Path
    device_ca_pub: Path
    trust_file: Path

    def document(self, version: int) -> bytes:
        """The wire bytes of trust document ``version`` with this kit's root, release and
        control-plane keys, signed by the root key (no device-ca role)."""
        return build_trust_document(
            version=version,
            expires=datetime.now(UTC) + timedelta(days=365),
            roots=[load_public_key(self.root_pub)],
            releases=[load_public_key(self.release_pub)],
            control_planes=[load_public_key(self.cp_pub)],
            signers=[load_private_key(self.root_key)],
        ).raw()


def make_trust_kit(dir: Path) -> TrustKit:
    """Create the key pairs (``root``, ``release``, ``control-plane``, ``device-ca``) and
    the trust file."""
    dir.mkdir(parents=True, exist_ok=True)
    root_key, root_pub = write_keypair(dir, "root")
    release_key, release_pub = write_keypair(dir, "release")
    cp_key, cp_pub = write_keypair(dir, "control-plane")
    device_ca_key, device_ca_pub = write_keypair(dir, "device-ca")
    document = build_trust_document(
        version=1,
        expires=datetime.now(UTC) + timedelta(days=365),
        roots=[load_public_key(root_pub)],
        releases=[load_public_key(release_pub)],
        control_planes=[load_public_key(cp_pub)],
        device_cas=[load_public_key(device_ca_pub)],
        signers=[load_private_key(root_key)],
    )
    trust_file = dir / "trust.json"
    trust_file.write_bytes(document.raw())
    return TrustKit(
        dir=dir,
        root_key=root_key,
        root_pub=root_pub,
        release_key=release_key,
        release_pub=release_pub,
        cp_key=cp_key,
        cp_pub=cp_pub,
        device_ca_key=device_ca_key,
        device_ca_pub=device_ca_pub,
        trust_file=trust_file,
    )
