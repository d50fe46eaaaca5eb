"""The control plane's one settings object, read from the environment (and CLI flags).

| variable                    | default                                   |
|-----------------------------|-------------------------------------------|
| ``EDGEFLEET_DATA_DIR``      | ``./edgefleet-data``                      |
| ``DATABASE_URL``            | ``sqlite:///<data dir>/edgefleet.db``     |
| ``MQTT_URL``                | ``mqtt://127.0.0.1:1883``                 |
| ``EDGEFLEET_ROOT_KEYS``     | none: required. Pinned root public keys    |
| ``EDGEFLEET_TRUST``         | none; required to bootstrap an empty DB   |
| ``EDGEFLEET_CONTROL_PLANE_KEY`` | none: required. Signs deployment commands |
| ``EDGEFLEET_COMMAND_TTL``   | 604800 (7 days): a command's lifetime, s  |
| ``EDGEFLEET_DEVICE_CA_KEY`` | none: no enrollment. Issues device certs  |
| ``EDGEFLEET_DEVICE_CERT_TTL``| 604800 (7 days): a device cert's lifetime|
| ``EDGEFLEET_MQTT_CLIENT_ID``| ``edgefleet-cp-<hostname>-<http port>``   |
| ``EDGEFLEET_MQTT_SHARE_GROUP``| none: every report. Replicas of a group split them (MQTT 5)|
| ``EDGEFLEET_MQTT_CA``       | none: the system store. CA for mqtts://   |
| ``EDGEFLEET_MQTT_CERT``/``_KEY`` | none. Our MQTT client certificate    |
| ``EDGEFLEET_MAX_BLOB_BYTES``| 8 GiB                                     |
| ``EDGEFLEET_HTTP_PORT``     | none; the CLI sets it from ``--port``      |
| ``EDGEFLEET_ROLLOUT_TICK_S``| 1.0: seconds between rollout driver steps |
| ``EDGEFLEET_ADMIN_TOKEN``   | none; bootstrap admin API token (secret)  |
| ``EDGEFLEET_HISTORY_RAW_S`` | 86400: heartbeat history kept as reported |
| ``EDGEFLEET_HISTORY_BUCKET_S``| 3600: then folded into buckets this wide|
| ``EDGEFLEET_HISTORY_KEEP_S``| 2592000 (30 days): then dropped           |
| ``EDGEFLEET_AUDIT_KEEP_S``  | 31536000 (365 days): audit entries kept   |

Secrets (passwords in URLs) never reach a log line: use :func:`mask_url`.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controlplane.errors import ConfigError
from controlplane.history import BUCKET_S, KEEP_S, RAW_S, Retention
from protocol import BrokerAddress, ProtocolError, mask_url, parse_broker_url

DEFAULT_COMMAND_TTL_S = 7 * 24 * 3600
MIN_COMMAND_TTL_S = 60
MAX_COMMAND_TTL_S = 366 * 24 * 3600
DEFAULT_DEVICE_CERT_TTL_S = 7 * 24 * 3600
MIN_DEVICE_CERT_TTL_S = 60
DEFAULT_BLOB_URL_TTL_S = 15 * 60


def parse_mqtt_url(url: str) -> BrokerAddress:
    try:
        return parse_broker_url(url)
    except ProtocolError as exc:
        raise ConfigError(f"invalid MQTT_URL: {exc}") from exc


def default_client_id(http_port: int | None, hostname: str | None = None) -> str:
    """``edgefleet-cp-<hostname>-<port>``: stable across restarts of one process slot
    (the broker keeps its persistent session), distinct between replicas."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname or socket.gethostname()).strip("-.")
    base = f"edgefleet-cp-{host[:64] or 'localhost'}"
    return base if http_port is None else f"{base}-{http_port}"


def sqlalchemy_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` onto the psycopg 3 driver; others unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_BLOB_STORE = re.compile(r"^s3://[^/?#]+(/[^?#]*)?$")
_ENDPOINT = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")


class ControlPlaneSettings(BaseSettings):
    """Everything the control plane process needs to know; one instance per process."""

    model_config = SettingsConfigDict(validate_by_name=True, validate_by_alias=True, extra="ignore")

    data_dir: Path = Field(default=Path("./edgefleet-data"), validation_alias="EDGEFLEET_DATA_DIR")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", validation_alias="MQTT_URL")
    #: Pinned root public keys (files or directories of ``*.pub``): the trust chain in
    #: the database, or the bootstrap document, must verify from one of them.
    root_keys: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="EDGEFLEET_ROOT_KEYS"
    )
    #: The root-signed trust document stored when the database holds none yet.
    trust: Path | None = Field(default=None, validation_alias="EDGEFLEET_TRUST")
    #: This control plane's private key; the trust document must certify it.
    control_plane_key: Path | None = Field(
        default=None, validation_alias="EDGEFLEET_CONTROL_PLANE_KEY"
    )
    #: Seconds a signed deployment command stays valid (re-signed at half its lifetime).
    command_ttl: int = Field(
        default=DEFAULT_COMMAND_TTL_S,
        ge=MIN_COMMAND_TTL_S,
        le=MAX_COMMAND_TTL_S,
        validation_alias="EDGEFLEET_COMMAND_TTL",
    )
    #: The device CA's private key: the trust document must certify it for the device-ca
    #: role. Without it no device can enroll, so no device report is believed.
    device_ca_key: Path | None = Field(default=None, validation_alias="EDGEFLEET_DEVICE_CA_KEY")
    #: Seconds a device certificate is valid; agents renew at half of it.
    device_cert_ttl: int = Field(
        default=DEFAULT_DEVICE_CERT_TTL_S,
        ge=MIN_DEVICE_CERT_TTL_S,
        le=MAX_COMMAND_TTL_S,
        validation_alias="EDGEFLEET_DEVICE_CERT_TTL",
    )
    #: The HTTP port this process serves (the CLI sets it from ``--port``); it makes the
    #: default MQTT client id distinct between replicas on one host.
    http_port: int | None = Field(
        default=None, ge=0, le=65535, validation_alias="EDGEFLEET_HTTP_PORT"
    )
    mqtt_client_id: str = Field(
        # Stable, so the broker keeps this persistent session's QoS 1 reports while the
        # control plane is down; unique per replica, or two of them knock each other off.
        default="",
        max_length=256,
        validation_alias="EDGEFLEET_MQTT_CLIENT_ID",
    )
    #: Replicas with the same group split device reports between them (MQTT 5 shared
    #: subscriptions, ``$share/<group>/edgefleet/v1/devices/+/+``): each report reaches
    #: one of them. None: this replica subscribes alone and gets every report (one
    #: replica; or a broker without MQTT 5, like the embedded one).
    mqtt_share_group: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[^/+#]+$",
        validation_alias="EDGEFLEET_MQTT_SHARE_GROUP",
    )
    #: mqtts:// only: the CA the broker's certificate must chain to (``broker-config``'s
    #: ``ca.crt``), and this replica's client certificate and key (``_IDENTITY.crt``/``.key``)
    mqtt_ca: Path | None = Field(default=None, validation_alias="EDGEFLEET_MQTT_CA")
    mqtt_cert: Path | None = Field(default=None, validation_alias="EDGEFLEET_MQTT_CERT")
    mqtt_key: Path | None = Field(default=None, validation_alias="EDGEFLEET_MQTT_KEY")
    max_blob_bytes: int = Field(
        default=8 * 1024**3, gt=0, validation_alias="EDGEFLEET_MAX_BLOB_BYTES"
    )
    #: Where bundle files live: unset, ``DATA_DIR/blobs`` on this host (one replica, or
    #: replicas sharing that directory); ``s3://bucket[/prefix]``, an S3-compatible object
    #: store that devices download from with presigned URLs (docs/controlplane.md).
    blob_store: str | None = Field(default=None, validation_alias="EDGEFLEET_BLOB_STORE")
    #: The S3 API endpoint the control plane uses (MinIO, Ceph, ...); unset: AWS.
    s3_endpoint_url: str | None = Field(default=None, validation_alias="EDGEFLEET_S3_ENDPOINT_URL")
    #: The endpoint put in devices' presigned URLs, where devices reach the store under
    #: another address than the control plane does; unset: ``s3_endpoint_url``.
    s3_public_url: str | None = Field(default=None, validation_alias="EDGEFLEET_S3_PUBLIC_URL")
    #: The region requests are signed for; unset: boto3's (``AWS_REGION``...), else us-east-1.
    s3_region: str | None = Field(default=None, validation_alias="EDGEFLEET_S3_REGION")
    #: Seconds a presigned download URL stays valid (never past the command's expiry); a
    #: device that starts later is sent to a fresh one by the control plane's blob URL.
    blob_url_ttl: int = Field(
        default=DEFAULT_BLOB_URL_TTL_S,
        ge=60,
        le=7 * 24 * 3600,
        validation_alias="EDGEFLEET_BLOB_URL_TTL",
    )
    #: Seconds between two steps of the rollout driver (each running rollout per step).
    rollout_tick_s: float = Field(
        default=1.0, gt=0, le=3600, validation_alias="EDGEFLEET_ROLLOUT_TICK_S"
    )
    #: The admin API token stored (as its hash, named "bootstrap") when the database
    #: holds no token yet; without it one is generated and printed once. Never logged.
    admin_token: SecretStr | None = Field(default=None, validation_alias="EDGEFLEET_ADMIN_TOKEN")
    #: Heartbeat history (``controlplane.history``): kept as reported this long, then
    #: folded into buckets this wide, which are kept this long.
    history_raw_s: int = Field(default=RAW_S, gt=0, validation_alias="EDGEFLEET_HISTORY_RAW_S")
    history_bucket_s: int = Field(
        default=BUCKET_S, gt=0, validation_alias="EDGEFLEET_HISTORY_BUCKET_S"
    )
    history_keep_s: int = Field(default=KEEP_S, gt=0, validation_alias="EDGEFLEET_HISTORY_KEEP_S")
    #: Audit trail entries (``controlplane.audit``) are dropped this long after they were
    #: recorded.
    audit_keep_s: int = Field(default=365 * 86_400, gt=0, validation_alias="EDGEFLEET_AUDIT_KEEP_S")

    #: Alert webhooks (``controlplane.alerts``): seconds between two dispatcher wake-ups,
    #: the timeout of one attempt, the first retry's delay (doubled at each retry up to
    #: the cap), the attempts before a delivery fails, and how long finished ones are kept.
    alert_tick_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="EDGEFLEET_ALERT_TICK_S"
    )
    alert_timeout_s: float = Field(
        default=10.0, gt=0, le=120, validation_alias="EDGEFLEET_ALERT_TIMEOUT_S"
    )
    alert_backoff_s: float = Field(
        default=30.0, gt=0, le=86400, validation_alias="EDGEFLEET_ALERT_BACKOFF_S"
    )
    alert_backoff_cap_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400, validation_alias="EDGEFLEET_ALERT_BACKOFF_CAP_S"
    )
    alert_max_attempts: int = Field(
        default=10, ge=1, le=100, validation_alias="EDGEFLEET_ALERT_MAX_ATTEMPTS"
    )
    alert_keep_s: int = Field(default=7 * 86400, gt=0, validation_alias="EDGEFLEET_ALERT_KEEP_S")

    @field_validator("root_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value

    @field_validator("blob_store", mode="after")
    @classmethod
    def _blob_store(cls, value: str | None) -> str | None:
        if value and not _BLOB_STORE.match(value):
            raise ValueError(
                f"{value[:80]!r} is not s3://bucket[/prefix] (unset: bundles on this host)"
            )
        return value or None

    @field_validator("s3_endpoint_url", "s3_public_url", mode="after")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value and not _ENDPOINT.match(value):
            raise ValueError(f"{value[:80]!r} is not an http:// or https:// URL of an S3 endpoint")
        if value and not value.isascii():  # devices take ASCII URLs (protocol.URL_PATTERN)
            raise ValueError(
                f"{value[:80]!r}: write the URL in ASCII (an internationalised host in its "
                "xn-- form, other characters %-encoded)"
            )
        return value or None

    @field_validator("database_url", mode="after")
    @classmethod
    def _driver(cls, value: str | None) -> str | None:
        return sqlalchemy_url(value) if value else None

    @model_validator(mode="after")
    def _defaults(self) -> ControlPlaneSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'edgefleet.db'}"
        if not self.mqtt_client_id.strip():
            self.mqtt_client_id = default_client_id(self.http_port)
        if (self.mqtt_cert is None) != (self.mqtt_key is None):
            raise ValueError("EDGEFLEET_MQTT_CERT and EDGEFLEET_MQTT_KEY go together")
        self.retention  # noqa: B018 - ValueError (one line) if the three do not fit
        return self

    @property
    def retention(self) -> Retention:
        return Retention(self.history_raw_s, self.history_bucket_s, self.history_keep_s)

    @property
    def db_url(self) -> str:
        assert self.database_url is not None  # set by _defaults
        return self.database_url

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def mqtt(self) -> BrokerAddress:
        return parse_mqtt_url(self.mqtt_url)

    def describe(self) -> str:
        """One log line about this configuration, without secrets."""
        return (
            f"data_dir={self.data_dir} database={mask_url(self.db_url)} "
            f"mqtt={mask_url(self.mqtt_url)} mqtt_client_id={self.mqtt_client_id} "
            f"mqtt_share_group={self.mqtt_share_group} "
            f"root_keys={len(self.root_keys)} path(s) trust={self.trust} "
            f"control_plane_key={self.control_plane_key} command_ttl={self.command_ttl}s "
            f"device_ca_key={self.device_ca_key} device_cert_ttl={self.device_cert_ttl}s "
            f"blob_store={self.blob_store or self.blobs_dir}"
        )


def load_settings(**given: Any) -> ControlPlaneSettings:
    """Settings from ``given`` (None: not given, the environment or default decides);
    ConfigError naming the first bad setting in one line."""
    try:
        return ControlPlaneSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where}: {message}") from exc
