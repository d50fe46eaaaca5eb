"""``edgectl push model``: build, sign (locally), upload, and start a rollout of a bundle.

A directory that already holds ``model.sig`` is a signed bundle (signed by
``edgectl bundle sign`` or by upstream ``model_signing sign key``): it is pushed as is,
never re-signed, and its ``edgefleet.json`` must name the given model and version.
Anything else is built into a bundle and signed with the release key first.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgectl.client import ControlPlaneClient
from edgectl.errors import ServerError, UsageError, VerificationError
from edgectl.input_hint_args import NO_HINTS_WARNING
from edgectl.progress import UploadProgress
from edgectl.trust_cmds import verify_trust_file
from model_store import (
    FRAMEWORK_PIPELINE,
    METADATA_FILENAME,
    SIGNATURE_FILENAME,
    BundleError,
    ModelStoreError,
    SignatureError,
    build_bundle,
    bundle_files,
    load_metadata,
    load_private_key,
    sha256_file,
    sign_bundle,
    verify_bundle_trusted,
)
from model_store.input_hints import batch_by_position, named_batch
from protocol import FileRef

logger = logging.getLogger(__name__)

KEY_ENV = "EDGECTL_KEY"
#: the bundle file devices run selection and the health gate on (``agent.deployment.gate``)
BOOTSTRAP_FILENAME = "bootstrap.npz"
DEFAULT_KEY = Path("~/.config/edgefleet/keys/release.key")


def default_key_path() -> Path:
    return Path(os.environ.get(KEY_ENV) or DEFAULT_KEY).expanduser()


@dataclass(frozen=True)
class PushResult:
    version: dict[str, Any]
    #: The rollout started (``POST /api/v1/rollouts``), None when only uploaded.
    rollout: dict[str, Any] | None


#: Makes the progress display for an upload of that many bytes.
ProgressFactory = Callable[[int], UploadProgress]


def is_signed_bundle(path: Path) -> bool:
    """True for a directory that already holds ``model.sig``: it is pushed as is."""
    return path.is_dir() and (path / SIGNATURE_FILENAME).exists()


def _check_signed_bundle(bundle: Path, name: str, version: str) -> None:
    if not (bundle / METADATA_FILENAME).is_file():
        raise UsageError(
            f"signed bundle {bundle} has no {METADATA_FILENAME}: make it with "
            "'edgectl bundle build' before signing"
        )
    metadata = load_metadata(bundle)
    if (metadata.name, metadata.version) != (name, version):
        raise UsageError(
            f"bundle {bundle} is {metadata.name} {metadata.version} ({METADATA_FILENAME}), "
            f"not {name} {version} as --name/--version say"
        )


def _check_trusted(bundle: Path, trust_path: Path) -> None:
    now = datetime.now(UTC)
    trust, _ = verify_trust_file(trust_path, None, now)
    try:
        manifest = verify_bundle_trusted(bundle, trust, now=now)
    except (SignatureError, BundleError) as exc:
        raise VerificationError(f"invalid: {exc}") from exc
    logger.info("bundle verified against trust document version %d", trust.version)
    logger.debug("bundle digest %s", manifest.bundle_digest)


#: Rollout states that hold a model in a fleet: no other rollout of it may start there.
_ACTIVE = ("running", "paused")


def _check_no_active_rollout(client: ControlPlaneClient, name: str, fleet: str) -> None:
    """ServerError (409, as the control plane would answer) while a rollout of ``name``
    is running or paused in ``fleet``: checked before anything is uploaded."""
    for rollout in client.rollouts(fleet=fleet):
        if rollout.get("model") == name and rollout.get("state") in _ACTIVE:
            rid, state = rollout.get("id"), rollout.get("state")
            raise ServerError(
                f"rollout {rid} of {name} in fleet {fleet} is {state}: let it complete "
                f"(edgectl rollouts show {rid}) or abort it (edgectl rollouts abort {rid}) "
                "first; nothing was uploaded",
                status_code=409,
            )


def _start_rollout(
    client: ControlPlaneClient, name: str, version: str, fleet: str, **options: Any
) -> dict[str, Any]:
    """``POST /rollouts``; a refusal says that the version is registered all the same."""
    try:
        return client.create_rollout(name, version, fleet, **options)
    except ServerError as exc:
        raise ServerError(
            f"{exc} ({name} {version} is uploaded and registered: push it again once "
            "that is resolved, nothing is uploaded twice)",
            status_code=exc.status_code,
        ) from exc


def beyond_batch(inputs: Sequence[Any]) -> list[str]:
    """The inputs with a dynamic dimension other than a batch, which devices can only
    guess: a batch is a first dimension (of a tensor, or of a vector beside batched
    inputs) or one named like ``batch``; devices measure a batch of 1."""
    batched = any(len(s.shape) >= 2 and isinstance(s.shape[0], str) for s in inputs)
    guessed = []
    for spec in inputs:
        for axis, dim in enumerate(spec.shape):
            batch = batch_by_position(axis, len(spec.shape), batched=batched)
            if isinstance(dim, str) and not batch and not named_batch(dim):
                guessed.append(spec.name)
                break
    return guessed


def _warn_without_inputs(bundle: Path) -> None:
    """Warn (stderr) when devices will have to guess the model's inputs: it has dynamic
    dimensions beyond the batch and the bundle has neither a ``bootstrap.npz`` nor input
    hints."""
    metadata = load_metadata(bundle)
    if metadata.framework == FRAMEWORK_PIPELINE or metadata.input_hints:
        return
    if (bundle / BOOTSTRAP_FILENAME).is_file():
        return
    dynamic = beyond_batch(metadata.inputs)
    if dynamic:
        shown = ", ".join(dynamic[:5]) + (", ..." if len(dynamic) > 5 else "")
        print(NO_HINTS_WARNING.format(name=metadata.name, inputs=shown), file=sys.stderr)


def push_model(
    client: ControlPlaneClient,
    source: Path,
    *,
    name: str,
    version: str,
    fleet: str | None,
    key_path: Path,
    trust_path: Path | None = None,
    extra_files: Sequence[Path] = (),
    selection: dict[str, Any] | None = None,
    serving: dict[str, Any] | None = None,
    input_hints: dict[str, Any] | None = None,
    variant: str | None = None,
    selector: Mapping[str, str] | None = None,
    strategy: Mapping[str, Any] | None = None,
    progress: ProgressFactory | None = None,
    priority: str | None = None,
) -> PushResult:
    """Push ``source`` (a signed bundle as is, else built and signed with ``key_path``)
    and, with ``fleet``, start a rollout of it to the fleet's devices matching
    ``selector``, batch by batch as ``strategy`` (``Strategy.to_json`` keys) says.

    With ``trust_path`` the bundle is verified against that trust document's release
    keys before anything is uploaded. ``selection`` (``pin``, ``tolerance``, ``topk``) and
    ``input_hints`` go into the metadata of a bundle built here; a model with dynamic input
    dimensions beyond the batch and neither a ``bootstrap.npz`` nor input hints is warned
    about on stderr before anything is uploaded; ``variant`` registers the bundle as another variant
    of an existing version. Everything that can be checked locally (model file, key, the
    bundle itself) is checked before the control plane is contacted, and the fleet before
    anything is uploaded, so a bad invocation leaves nothing half done.
    """
    if not source.exists():
        raise UsageError(f"model not found: {source}")
    presigned = is_signed_bundle(source)
    if presigned and extra_files:
        raise UsageError("--extra cannot change a signed bundle: build and sign it with them")
    if presigned and (selection or input_hints):
        raise UsageError(
            "--pin, --tolerance, --topk-agreement and --input-* cannot change a signed "
            "bundle: build and sign it with them"
        )
    if presigned and serving:
        raise UsageError(
            "--priority, --concurrency, --threads and --memory cannot change a signed "
            "bundle: build and sign it with them"
        )
    if not presigned and not key_path.is_file():
        raise UsageError(
            f"signing key not found: {key_path} "
            "(create one with 'edgectl keys create --out DIR' and pass --key DIR/release.key)"
        )
    with tempfile.TemporaryDirectory(prefix="edgectl-bundle-") as tmp:
        bundle = source if presigned else Path(tmp) / "bundle"
        try:
            if presigned:
                logger.info("pushing the signed bundle %s as is", source)
                _check_signed_bundle(source, name, version)
            else:
                key = load_private_key(key_path)
                build_bundle(
                    source,
                    bundle,
                    name=name,
                    version=version,
                    extra_files=extra_files,
                    selection=selection,
                    serving=serving,
                    input_hints=input_hints,
                )
                sign_bundle(bundle, key)
            if trust_path is not None:
                _check_trusted(bundle, trust_path)
            _warn_without_inputs(bundle)
            sig_path = bundle / SIGNATURE_FILENAME
            files = [
                FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(bundle)
            ]
            signature = FileRef(
                path=SIGNATURE_FILENAME, sha256=sha256_file(sig_path), size=sig_path.stat().st_size
            )
        except ModelStoreError as exc:
            raise UsageError(str(exc)) from exc
        client.health()
        if fleet is not None:
            client.fleet(fleet)  # an unknown fleet fails here, before anything is uploaded
            _check_no_active_rollout(client, name, fleet)
        refs = [*files, signature]
        shown = progress(sum(r.size for r in refs)) if progress is not None else None
        for ref in refs:
            logger.info("uploading %s (%d bytes)", ref.path, ref.size)
            on_bytes = shown.advance if shown is not None else None
            client.upload_blob(bundle / ref.path, ref.sha256, on_bytes=on_bytes)
        if shown is not None:
            shown.finish()
    created = client.create_version(name, version, signature, files, variant=variant)
    rollout = (
        _start_rollout(
            client, name, version, fleet, selector=selector, strategy=strategy, priority=priority
        )
        if fleet
        else None
    )
    return PushResult(version=created, rollout=rollout)
