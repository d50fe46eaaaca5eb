"""Errors of the model store.

Every error raised by this package on bad input is a ``ModelStoreError``; ``str(error)``
is one line fit to show an operator (no traceback needed). Errors from onnx,
cryptography, json and the OS are caught where they enter and re-raised as one of these
with ``raise ... from exc``.

ModelStoreError
├── BundleError          bad model source or bundle: missing file, not a valid ONNX model,
│                        unsafe path (symlink, '..', absolute, NUL, duplicate), missing or
│                        extra files compared with the signature, malformed edgefleet.json
├── SignatureError       signature missing or malformed, does not verify against any
│   │                    trusted key, wrong payload / statement / predicate type, or a
│   │                    file's digest differs from the signed one; a DSSE envelope
│   │                    that is malformed or not signed by a trusted key
│   └── TrustError       a trust document is malformed, expired, not signed by the root
│                        it must be signed by, or an update breaks the update rules
├── CertificateError     a device CSR, certificate or CA bundle is malformed, not P-256,
│                        not issued by a trusted device CA, expired, or names no device
├── KeyFileError         key file missing, unreadable, not PEM, not ECDSA P-256, or an
│                        existing key file would be overwritten
├── InvalidDigest        (also a ValueError) a string that is not a lowercase sha256 hex
└── StorageError         artifact store failures
    ├── BlobDigestMismatch   the bytes do not hash to the expected digest
    ├── BlobTooLarge         the bytes exceed the size limit given to put_stream
    └── BlobNotFound         (also a FileNotFoundError) no blob with that digest
"""

from __future__ import annotations


class ModelStoreError(Exception):
    """Base class of every model store error; the message is one user-facing line."""


class BundleError(ModelStoreError):
    """A model source or bundle directory is unusable or unsafe."""


class SignatureError(ModelStoreError):
    """A bundle signature is missing, malformed, untrusted or does not match the files."""


class TrustError(SignatureError):
    """A trust document is malformed, expired, wrongly signed, or not a valid update."""


class CertificateError(ModelStoreError):
    """A device CSR or certificate is malformed, untrusted, expired or names no device."""


class KeyFileError(ModelStoreError):
    """A key file cannot be created or loaded as an ECDSA P-256 PEM key."""


class InvalidDigest(ModelStoreError, ValueError):
    """A digest is not 64 lowercase hexadecimal characters."""


class StorageError(ModelStoreError):
    """The artifact store could not store or find a blob."""


class BlobDigestMismatch(StorageError):
    """Streamed bytes do not hash to the digest the caller expected."""


class BlobTooLarge(StorageError):
    """Streamed bytes exceed the caller's size limit."""


class BlobNotFound(StorageError, FileNotFoundError):
    """No blob with the requested digest is stored."""
