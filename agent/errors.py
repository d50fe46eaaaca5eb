"""Errors of the edge agent.

Every error the agent raises on bad input or a failed step is an ``AgentError`` whose
``str()`` is one line fit for an operator (and for ``DeploymentEvent.reason``). Errors
from paho, onnxruntime, the HTTP client (``agent.http_client``) and model_store are caught
where they enter and re-raised as one of these with ``raise ... from exc``.

AgentError
├── AgentConfigError        agent.toml missing, not TOML, or a field missing / invalid
├── IdentityError           enrollment or renewal failed: bad token, control plane refused
│                           or unreachable, a certificate not issued by a trusted device CA
├── LinkError               the MQTT client could not be set up or used
├── SpoolError              the on-disk telemetry spool could not be opened or written
├── DeploymentError         a desired state could not be applied (previous model kept)
│   ├── DownloadError       refused content: size bound exceeded, digest mismatch, HTTP 4xx
│   │   └── TransientDownloadError  control plane unreachable, connection reset, timeout,
│   │       │                       bundle deadline, HTTP 5xx/408/429: retried (backoff)
│   │       └── StorageFull         no space (ENOSPC / EDQUOT) to stage the bundle: its
│   │                               partial files are removed; retried (space may be freed)
│   ├── VerificationError   signature / manifest / bundle verification failed
│   ├── UnmetConstraints    the bundle's hardware constraints do not hold on this host
│   ├── DoesNotFit          the model would not fit the device's memory budget beside the
│   │                       other models (declared before download, measured once loaded)
│   ├── CommandRefused      a signed deployment command was refused (signature, device,
│   │                       generation, expiry, trust): nothing changes
│   ├── HealthGateFailed    the new model failed warm-up, gave non-finite outputs or was
│   │                       too slow against the previous version: rolled back
│   ├── ShadowGateFailed    the new model, run as a shadow of the serving one, disagreed
│   │                       with it or was too slow (``protocol.ShadowSpec``): not switched
│   ├── MarkedBad           the bundle crashed the agent too often on this device: not
│   │                       tried again before a newer generation
│   └── IllegalTransition   the lifecycle table forbids this step (a bug, never input)
├── TrustStoreError         a trust document was refused (forged, skipping, expired...)
│   └── TrustFetchError     a trust document could not be fetched now (worth retrying)
│       └── KeeperUnavailable  the keeper process (``agent.keeper``) could not run or died
│                              mid-operation; also a TransientDownloadError: retried
├── RunnerError             a backend could not load or run a model
│   ├── RunnerUnavailable   no runner plugin is available for the request
│   ├── ModelLoadError      the backend refused the model or its declared signature
│   └── InferenceError      the backend failed while running
│       ├── InvalidInput    request tensors do not match the model (HTTP 400)
│       └── StepUnavailable a pipeline step's model (at its version) is not served (503)
└── ModelNotFound           no active model with that name (HTTP 404)
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every agent error; the message is one user-facing line."""


class AgentConfigError(AgentError):
    """The agent configuration cannot be loaded."""


class IdentityError(AgentError):
    """The device could not enroll or renew its certificate, or its identity is unusable."""


class LinkError(AgentError):
    """The MQTT link could not be set up or used."""


class SpoolError(AgentError):
    """The telemetry spool (SQLite under data_dir) could not be opened or written."""


class DeploymentError(AgentError):
    """A desired state could not be applied; the previous model keeps serving."""


class DownloadError(DeploymentError):
    """A blob could not be downloaded within its bounds."""


class TransientDownloadError(DownloadError):
    """The control plane could not be reached or the transfer broke off; worth retrying.

    Every other ``DeploymentError`` is permanent: the same bytes would be refused again.
    """


class StorageFull(TransientDownloadError):
    """The staging filesystem has no room for the bundle (before or while downloading).

    Transient: an operator (or the cache clean-up) may free space, and the retry costs
    nothing until then because free space is checked before any request. Unlike other
    transient failures nothing is kept for a resume: the bundle's partial files are
    removed at once, so a full disk is not kept full by us.
    """


class VerificationError(DeploymentError):
    """A signature, manifest or bundle did not verify."""


class UnmetConstraints(DeploymentError):
    """The bundle declares hardware constraints this host does not meet (permanent)."""


class DoesNotFit(DeploymentError):
    """The model would not fit the device's memory budget beside the others (permanent:
    the same set on the same budget would be refused again)."""


class CommandRefused(DeploymentError):
    """A signed deployment command was refused; the current model keeps serving."""


class HealthGateFailed(DeploymentError):
    """The new model did not pass the health gate before commit (permanent)."""


class ShadowGateFailed(DeploymentError):
    """The new model's shadow period did not pass its gate (permanent): the serving
    version keeps serving. The message starts with ``protocol.SHADOW_GATE_PREFIX``."""


class MarkedBad(DeploymentError):
    """The bundle is marked bad on this device (crash loop) until a newer generation."""


class TrustStoreError(AgentError):
    """A trust document could not be accepted; the current one stays."""


class TrustFetchError(TrustStoreError):
    """A trust document could not be fetched from the control plane; try again later."""


class KeeperUnavailable(TrustFetchError, TransientDownloadError):
    """The keeper process (``agent.keeper``) could not be started or died mid-operation:
    nothing was decided, so it is transient for trust updates, commands and bundles alike."""


class IllegalTransition(DeploymentError):
    """The deployment lifecycle table does not allow this transition."""


class RunnerError(AgentError):
    """A backend could not load or run a model."""


class RunnerUnavailable(RunnerError):
    """No runner plugin can serve the request."""


class ModelLoadError(RunnerError):
    """The backend refused the model."""


class InferenceError(RunnerError):
    """The backend failed while running a model."""


class InvalidInput(InferenceError):
    """Request tensors do not match the model's declared inputs."""


class StepUnavailable(InferenceError):
    """A served pipeline cannot run: a step's model, at its version, is not served now."""


class ModelNotFound(AgentError):
    """No active model has that name."""
