"""The control plane's one error hierarchy.

Errors from SQLAlchemy, paho-mqtt and model_store are caught where they enter and
re-raised as one of these (``raise X(...) from exc``). The HTTP layer turns each into
``{"detail": "<one line>"}`` with the class's ``status_code``; the CLI turns
:class:`ConfigError` into one line on stderr and exit status 2.

ControlPlaneError
├── ConfigError              settings, keys, trust chain, database or port unusable at start-up
├── InvalidRequest      400  the request is well-formed JSON but cannot be honoured
│   └── BundleRejected  400  signature, manifest, blobs or metadata of a version are wrong
├── Unauthorized        401  an enrollment token that is unknown, used or expired; a
│                            renewal by a key the device did not enroll with
├── NotFound            404  unknown blob, model, version, fleet, device or deployment
├── Conflict            409  a model version exists with other content; a trust version
│                            that is not the current one plus one
├── PayloadTooLarge     413  a blob upload exceeds the configured limit
├── RangeNotSatisfiable 416  a Range header outside the blob
└── Unavailable         503  the trust document does not certify our signing key (or has
                             expired): no deployment can be signed; database unreachable;
                             no device CA configured or certified: no enrollment
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of every error the control plane raises on purpose; the message is one line."""

    status_code = 500


class ConfigError(ControlPlaneError):
    """The control plane cannot start with this configuration."""


class InvalidRequest(ControlPlaneError):
    status_code = 400


class BundleRejected(InvalidRequest):
    """A model version's signature, manifest, blobs or metadata do not check out."""


class Unauthorized(ControlPlaneError):
    status_code = 401


class NotFound(ControlPlaneError):
    status_code = 404


class Conflict(ControlPlaneError):
    status_code = 409


class PayloadTooLarge(ControlPlaneError):
    status_code = 413


class RangeNotSatisfiable(ControlPlaneError):
    status_code = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class Unavailable(ControlPlaneError):
    status_code = 503
