"""``edgectl push model``: build, sign (locally), upload and deploy a bundle."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.errors import UsageError
from model_store import (
    SIGNATURE_FILENAME,
    ModelStoreError,
    build_bundle,
    bundle_files,
    load_private_key,
    sha256_file,
    sign_bundle,
)
from protocol import FileRef

logger = logging.getLogger(__name__)

KEY_ENV = "EDGECTL_KEY"
DEFAULT_KEY = Path("~/.config/edgefleet/keys/release.key")


def default_key_path() -> Path:
    return Path(os.environ.get(KEY_ENV) or DEFAULT_KEY).expanduser()


@dataclass(frozen=True)
class PushResult:
    version: dict[str, Any]
    deployment: dict[str, Any] | None


def push_model(
    client: ControlPlaneClient,
    source: Path,
    *,
    name: str,
    version: str,
    fleet: str | None,
    key_path: Path,
) -> PushResult:
    """Build a bundle from ``source``, sign it with ``key_path``, upload, deploy to ``fleet``.

    Everything that can be checked locally (model file, key, the bundle itself) is
    checked before the control plane is contacted, and the fleet before anything is
    uploaded, so a bad invocation leaves nothing half done on the server.
    """
    if not source.exists():
        raise UsageError(f"model not found: {source}")
    if not key_path.is_file():
        raise UsageError(
            f"signing key not found: {key_path} "
            "(create one with 'edgectl keys create --out DIR' and pass --key DIR/release.key)"
        )
    with tempfile.TemporaryDirectory(prefix="edgectl-bundle-") as tmp:
        bundle = Path(tmp) / "bundle"
        try:
            key = load_private_key(key_path)
            build_bundle(source, bundle, name=name, version=version)
            sig_path = sign_bundle(bundle, key)
            files = [
                FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(bundle)
            ]
        except ModelStoreError as exc:
            raise UsageError(str(exc)) from exc
        signature = FileRef(
            path=SIGNATURE_FILENAME, sha256=sha256_file(sig_path), size=sig_path.stat().st_size
        )
        client.health()
        if fleet is not None:
            client.fleet(fleet)  # an unknown fleet fails here, before anything is uploaded
        for ref in [*files, signature]:
            logger.info("uploading %s (%d bytes)", ref.path, ref.size)
            client.upload_blob(bundle / ref.path, ref.sha256)
    created = client.create_version(name, version, signature, files)
    deployment = client.create_deployment(name, version, fleet) if fleet else None
    return PushResult(version=created, deployment=deployment)
