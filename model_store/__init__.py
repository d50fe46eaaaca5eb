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
    dsse        sign_envelope, open_envelope, decode_envelope, encode_envelope,
                envelope_payload (unverified)
    trust       Role, TrustError, TrustDocument, build_trust_document, load_initial_trust,
                verify_trust_update, verify_bundle_trusted, verify_signature_trusted,
                parse_unverified_trust (operator tools only: checks no signature)
    storage     ArtifactStore, FilesystemArtifactStore (s3_storage: S3ArtifactStore, imported
                on demand: it needs boto3)

Internal: ``strict_json`` (``StrictJson``), the strict JSON reading (duplicate keys
refused, typed field reads) that every parser here (envelope, statement, metadata, dsse,
trust) uses with its own wording.

This package imports nothing of ours (it may import ``protocol``).
"""

from model_store.bundle import BundleFile, build_bundle, bundle_files
from model_store.digests import sha256_file
from model_store.dsse import (
    decode_envelope,
    encode_envelope,
    envelope_payload,
    open_envelope,
    sign_envelope,
)
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
