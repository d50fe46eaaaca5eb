"""EdgeFleet model store: bundle format, hashing, signing and verification, keys, storage.

A bundle is a directory: the ONNX model (plus any files of its source directory),
``edgefleet.json`` (``BundleMetadata``) and ``model.sig``, an OpenSSF model-signing
signature (Sigstore bundle v0.3 + DSSE + in-toto Statement v1) that upstream
``model_signing verify key`` accepts, made with an ECDSA P-256 release key.

Public surface:
    errors      ModelStoreError, BundleError, SignatureError, KeyFileError, InvalidDigest,
                StorageError, BlobDigestMismatch, BlobTooLarge, BlobNotFound
    layout      SIGNATURE_FILENAME, METADATA_FILENAME
    metadata    TensorSpec, BundleMetadata, load_metadata, read_onnx_io
    bundles     BundleFile, build_bundle, bundle_files, sha256_file
    signing     ManifestEntry, SignedManifest, sign_bundle, verify_signature, verify_bundle
    keys        generate_private_key, write_keypair, load_private_key, load_public_key,
                load_trusted_keys, key_id
    storage     ArtifactStore, FilesystemArtifactStore

This package imports nothing of ours (it may import ``protocol``).
"""

from model_store.bundle import BundleFile, build_bundle, bundle_files
from model_store.digests import sha256_file
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
)
from model_store.keys import (
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    write_keypair,
)
from model_store.metadata import BundleMetadata, TensorSpec, load_metadata
from model_store.onnx_io import read_onnx_io
from model_store.paths import METADATA_FILENAME, SIGNATURE_FILENAME
from model_store.signing import sign_bundle, verify_bundle, verify_signature
from model_store.statement import ManifestEntry, SignedManifest
from model_store.storage import ArtifactStore, FilesystemArtifactStore

__all__ = [
    "METADATA_FILENAME",
    "SIGNATURE_FILENAME",
    "ArtifactStore",
    "BlobDigestMismatch",
    "BlobNotFound",
    "BlobTooLarge",
    "BundleError",
    "BundleFile",
    "BundleMetadata",
    "FilesystemArtifactStore",
    "InvalidDigest",
    "KeyFileError",
    "ManifestEntry",
    "ModelStoreError",
    "SignatureError",
    "SignedManifest",
    "StorageError",
    "TensorSpec",
    "build_bundle",
    "bundle_files",
    "generate_private_key",
    "key_id",
    "load_metadata",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "read_onnx_io",
    "sha256_file",
    "sign_bundle",
    "verify_bundle",
    "verify_signature",
    "write_keypair",
]
