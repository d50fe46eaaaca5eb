"""Writes and lookups for the variants of model versions (keyword-only; see
:mod:`controlplane.crud`).

A variant is a further verified bundle of an existing model version (``ModelVariant``);
the ``ModelVersion`` row itself is the default. Registering the same bundle under the
same variant name again is a no-op; another bundle under that name, or a bundle already
registered as another variant of the version, is a Conflict. Every variant of a version
must serve the same tensors (names and dtypes) as its default, so a client never sees
which variant a device runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session, col, select

from controlplane.crud.catalog import bundle_columns, insert_or_get
from controlplane.errors import Conflict, InvalidRequest
from controlplane.models import ModelVariant, ModelVersion
from protocol import FileRef


def _interface(metadata: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The tensor names and dtypes of a bundle's inputs and outputs (shapes may differ:
    an IR names its dynamic dimensions ``?`` where the ONNX file calls them ``batch``)."""
    return {
        side: sorted((t.get("name", ""), t.get("dtype", "")) for t in metadata.get(side) or [])
        for side in ("inputs", "outputs")
    }


def _check_interface(version: ModelVersion, variant: str, metadata: dict[str, Any]) -> None:
    want, got = _interface(version.bundle_metadata), _interface(metadata)
    for side in ("inputs", "outputs"):
        if want[side] != got[side]:
            shown = ", ".join(f"{n}:{d}" for n, d in got[side]) or "none"
            expected = ", ".join(f"{n}:{d}" for n, d in want[side]) or "none"
            raise InvalidRequest(
                f"variant {variant!r} of {version.model} {version.version} has {side} "
                f"{shown}, but the version's default bundle has {expected}"
            )


def get_variant(session: Session, *, version_id: int, variant: str) -> ModelVariant | None:
    statement = select(ModelVariant).where(
        ModelVariant.model_version_id == version_id, ModelVariant.variant == variant
    )
    return session.exec(statement).first()


def variants_of(session: Session, *, version_ids: Iterable[int]) -> dict[int, list[ModelVariant]]:
    """The variants (default excluded) of each version id, oldest first."""
    ids = sorted(set(version_ids))
    found: dict[int, list[ModelVariant]] = {}
    if not ids:
        return found
    statement = (
        select(ModelVariant)
        .where(col(ModelVariant.model_version_id).in_(ids))
        .order_by(col(ModelVariant.created_at), col(ModelVariant.id))
    )
    for row in session.exec(statement).all():
        found.setdefault(row.model_version_id, []).append(row)
    return found


def with_default_digests(session: Session, *, digests: Iterable[str]) -> set[str]:
    """``digests`` plus, for each that is a variant's, the digest of its version's default
    bundle: a device running any variant of a version runs that version."""
    given = set(digests)
    if not given:
        return given
    statement = (
        select(ModelVersion.bundle_digest)
        .join(ModelVariant, col(ModelVariant.model_version_id) == col(ModelVersion.id))
        .where(col(ModelVariant.bundle_digest).in_(sorted(given)))
    )
    return given | set(session.exec(statement).all())


def _same_digest_elsewhere(
    session: Session, version: ModelVersion, variant: str, bundle_digest: str
) -> str | None:
    """The name under which ``bundle_digest`` is already a variant of ``version``, if any."""
    if version.bundle_digest == bundle_digest:
        return "default"
    assert version.id is not None
    for row in variants_of(session, version_ids=[version.id]).get(version.id, []):
        if row.bundle_digest == bundle_digest and row.variant != variant:
            return row.variant
    return None


def create_variant(
    session: Session,
    *,
    version: ModelVersion,
    variant: str,
    bundle_digest: str,
    signature: FileRef,
    files: Sequence[FileRef],
    metadata: dict[str, Any],
    key_id: str | None,
) -> tuple[ModelVariant, bool]:
    """Store a verified bundle as ``variant`` of ``version`` (committed); (existing, False)
    if it is registered already; Conflict if that name holds another bundle, or the bundle
    is another variant already; InvalidRequest if its tensors differ from the default's."""
    assert version.id is not None
    label = f"{version.model} {version.version}"
    existing = get_variant(session, version_id=version.id, variant=variant)
    if existing is None:
        other = _same_digest_elsewhere(session, version, variant, bundle_digest)
        if other is not None:
            raise Conflict(f"bundle {bundle_digest[:12]}… is already variant {other!r} of {label}")
        _check_interface(version, variant, metadata)
        version_id = version.id
        row = ModelVariant(
            model_version_id=version_id,
            variant=variant,
            **bundle_columns(bundle_digest, signature, files, metadata, key_id),
        )
        existing, created = insert_or_get(
            session, row, lambda: get_variant(session, version_id=version_id, variant=variant)
        )
        if created:
            return existing, True
    if existing.bundle_digest != bundle_digest:
        raise Conflict(
            f"variant {variant!r} of {label} already exists with bundle digest "
            f"{existing.bundle_digest[:12]}…, not {bundle_digest[:12]}…"
        )
    return existing, False
