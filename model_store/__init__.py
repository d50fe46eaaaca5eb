"""EdgeFleet model store: bundle format, hashing, signing and verification, keys, storage.

A bundle is a directory: the ONNX model (plus any files of its source directory),
``edgefleet.json`` (``BundleMetadata``) and ``model.sig``, an OpenSSF model-signing
signature (Sigstore bundle v0.3 + DSSE + in-toto Statement v1) that upstream
``model_signing verify key`` accepts, made with an ECDSA P-256 release key.

Public surface:
    errors      ModelStoreError, BundleError, SignatureError, KeyFileError, InvalidDigest,
                StorageError, BlobDigestMismatch, BlobTooLarge, BlobNotFound, TrustError
    layout      SIGNATURE_FILENAME, METADATA_FILENAME
    metadata    TensorSpec, BundleMetadata, BundleConstraints, BundleSelection, BundleServing,
                InputHint (input_hints: shapes, ranges, values of real inputs),
                load_metadata, parse_metadata, read_onnx_io, read_openvino_io
    bundles     BundleFile, build_bundle, bundle_files, sha256_file
    pipeline    FRAMEWORK_PIPELINE, PipelineSpec, PipelineStep, parse_pipeline, split_source
                (a bundle that runs other models of the device in turn)
    signing     ManifestEntry, SignedManifest, sign_bundle, verify_signature, verify_bundle
    keys        generate_private_key, write_keypair, load_private_key, load_public_key,
                load_trusted_keys, key_id, short_key_id, public_key_from_pem, public_key_pem
    dsse        sign_envelope, open_envelope; dsse_codec (no public-key crypto):
                decode_envelope, encode_envelope, envelope_payload (unverified)
    trust       Role, TrustError, TrustDocument, build_trust_document, load_initial_trust,
                verify_trust_update, verify_bundle_trusted, verify_signature_trusted,
                parse_unverified_trust (operator tools only: checks no signature)
    storage     ArtifactStore, FilesystemArtifactStore (s3_storage: S3ArtifactStore, imported
                on demand: it needs boto3)

Internal: ``strict_json`` (``StrictJson``), the strict JSON reading (duplicate keys
refused, typed field reads) that every parser here (envelope, statement, metadata, dsse,
trust) uses with its own wording.

Submodules are imported on first use of a name (PEP 562 ``__getattr__``), so a process
that needs only some parts loads only those: the agent's long-lived process must not
load ``cryptography`` (issue 18: ~11 MB that Python never gives back), and ``errors``,
``paths``, ``digests``, ``statement``, ``strict_json``, ``metadata``, ``pipeline``,
``input_hints``, ``onnx_wire``, ``onnx_io``, ``envelope``, ``dsse_codec``, ``bundle``,
``report_key``, ``report_seal`` and ``report_ack`` import without it (see
``tests/unit/model_store/test_crypto_free_imports.py``).

This package imports nothing of ours (it may import ``protocol``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_store.bundle import BundleFile, build_bundle, bundle_files
    from model_store.digests import sha256_file
    from model_store.dsse import open_envelope, sign_envelope
    from model_store.dsse_codec import decode_envelope, encode_envelope, envelope_payload
    from model_store.errors import (
        BlobDigestMismatch,
        BlobNotFound,
        BlobTooLarge,
        BundleError,
        InvalidDigest,
        KeyFileError,
        ModelStoreError,
        SignatureError,
        StorageError,
        TrustError,
    )
    from model_store.input_hints import InputHint
    from model_store.keys import (
        generate_private_key,
        key_id,
        load_private_key,
        load_public_key,
        load_trusted_keys,
        public_key_from_pem,
        public_key_pem,
        short_key_id,
        write_keypair,
    )
    from model_store.metadata import (
        BundleConstraints,
        BundleMetadata,
        BundleSelection,
        BundleServing,
        TensorSpec,
        load_metadata,
        parse_metadata,
    )
    from model_store.onnx_io import read_onnx_io
    from model_store.openvino_io import read_openvino_io
    from model_store.paths import METADATA_FILENAME, SIGNATURE_FILENAME
    from model_store.pipeline import (
        FRAMEWORK_PIPELINE,
        PipelineSpec,
        PipelineStep,
        parse_pipeline,
        split_source,
    )
    from model_store.signing import sign_bundle, verify_bundle, verify_signature
    from model_store.statement import ManifestEntry, SignedManifest
    from model_store.storage import ArtifactStore, FilesystemArtifactStore
    from model_store.trust import (
        Role,
        TrustDocument,
        build_trust_document,
        load_initial_trust,
        parse_unverified_trust,
        verify_bundle_trusted,
        verify_signature_trusted,
        verify_trust_chain,
        verify_trust_update,
    )

#: The submodule that defines each public name, imported when the name is first used.
_SOURCES: dict[str, tuple[str, ...]] = {
    "bundle": ("BundleFile", "build_bundle", "bundle_files"),
    "digests": ("sha256_file",),
    "dsse": ("open_envelope", "sign_envelope"),
    "dsse_codec": ("decode_envelope", "encode_envelope", "envelope_payload"),
    "errors": (
        "BlobDigestMismatch",
        "BlobNotFound",
        "BlobTooLarge",
        "BundleError",
        "InvalidDigest",
        "KeyFileError",
        "ModelStoreError",
        "SignatureError",
        "StorageError",
        "TrustError",
    ),
    "input_hints": ("InputHint",),
    "keys": (
        "generate_private_key",
        "key_id",
        "load_private_key",
        "load_public_key",
        "load_trusted_keys",
        "public_key_from_pem",
        "public_key_pem",
        "short_key_id",
        "write_keypair",
    ),
    "metadata": (
        "BundleConstraints",
        "BundleMetadata",
        "BundleSelection",
        "BundleServing",
        "TensorSpec",
        "load_metadata",
        "parse_metadata",
    ),
    "onnx_io": ("read_onnx_io",),
    "openvino_io": ("read_openvino_io",),
    "paths": ("METADATA_FILENAME", "SIGNATURE_FILENAME"),
    "pipeline": (
        "FRAMEWORK_PIPELINE",
        "PipelineSpec",
        "PipelineStep",
        "parse_pipeline",
        "split_source",
    ),
    "signing": ("sign_bundle", "verify_bundle", "verify_signature"),
    "statement": ("ManifestEntry", "SignedManifest"),
    "storage": ("ArtifactStore", "FilesystemArtifactStore"),
    "trust": (
        "Role",
        "TrustDocument",
        "build_trust_document",
        "load_initial_trust",
        "parse_unverified_trust",
        "verify_bundle_trusted",
        "verify_signature_trusted",
        "verify_trust_chain",
        "verify_trust_update",
    ),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = [
    "FRAMEWORK_PIPELINE",
    "METADATA_FILENAME",
    "SIGNATURE_FILENAME",
    "ArtifactStore",
    "BlobDigestMismatch",
    "BlobNotFound",
    "BlobTooLarge",
    "BundleConstraints",
    "BundleError",
    "BundleFile",
    "BundleMetadata",
    "BundleSelection",
    "BundleServing",
    "FilesystemArtifactStore",
    "InputHint",
    "InvalidDigest",
    "KeyFileError",
    "ManifestEntry",
    "ModelStoreError",
    "PipelineSpec",
    "PipelineStep",
    "Role",
    "SignatureError",
    "SignedManifest",
    "StorageError",
    "TensorSpec",
    "TrustDocument",
    "TrustError",
    "build_bundle",
    "build_trust_document",
    "bundle_files",
    "decode_envelope",
    "encode_envelope",
    "envelope_payload",
    "generate_private_key",
    "key_id",
    "load_initial_trust",
    "load_metadata",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "open_envelope",
    "parse_metadata",
    "parse_pipeline",
    "parse_unverified_trust",
    "public_key_from_pem",
    "public_key_pem",
    "read_onnx_io",
    "read_openvino_io",
    "sha256_file",
    "short_key_id",
    "sign_bundle",
    "sign_envelope",
    "split_source",
    "verify_bundle",
    "verify_bundle_trusted",
    "verify_signature",
    "verify_signature_trusted",
    "verify_trust_chain",
    "verify_trust_update",
    "write_keypair",
]


if not TYPE_CHECKING:  # hidden from mypy, which then still flags a misspelled name

    def __getattr__(name: str) -> object:
        module = _MODULE_OF.get(name)
        if module is None:
            # also how ``from model_store import dsse`` finds a submodule: Python imports it
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
