"""Agent configuration: ``agent.toml`` read with tomllib into a pydantic ``AgentConfig``."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from agent.errors import AgentConfigError
from agent.serving.http_wire import Limits
from protocol import BrokerAddress, FleetName, parse_broker_url

DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


def parse_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8500"`` -> ("127.0.0.1", 8500); port 0 means pick a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected host:port, e.g. 127.0.0.1:8500")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """``localhost``, an address in 127.0.0.0/8, or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_address(value: str) -> str:
    """``value`` if it is host:port on a loopback address, else ValueError."""
    host, _ = parse_host_port(value)
    if not is_loopback(host):
        raise ValueError(
            f"{host} is not a loopback address (127.0.0.0/8, ::1 or localhost); "
            "the local inference API has no authentication"
        )
    return value


#: ``local_grpc`` value for no gRPC server (the default: grpcio costs ~20 MB resident)
GRPC_OFF = "off"
#: ``local_grpc`` value for local_api's host and its port + 1 (0 if that is 0)
GRPC_AUTO = "auto"


class AgentConfig(BaseModel):
    """Settings of one agent (see docs/architecture.md, "Agent")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: DeviceId
    fleet: FleetName
    broker_url: str
    control_plane_url: str
    data_dir: Path
    #: pinned root public keys (PEM files or directories of ``*.pub``): the trust anchor
    root_keys: list[Path] = Field(min_length=1)
    #: optional root-signed trust document shipped at provisioning
    trust: Path | None = None
    #: a one-time enrollment token (``edgectl devices enroll``): used at the first start
    #: when the device has no identity yet (``data_dir/identity``); never logged
    enrollment_token: SecretStr | None = None
    local_api: str = "127.0.0.1:8500"
    #: the local API over gRPC (KServe v2 / Triton's ``tritonclient.grpc``): host:port on
    #: loopback, "off" for none (the default), "auto" for local_api's host and port + 1
    local_grpc: str = GRPC_OFF
    #: local API bounds: the largest request body (MiB) and the most open connections
    local_api_max_body_mb: int = Field(default=64, ge=1, le=4096)
    local_api_max_connections: int = Field(default=64, ge=1, le=10_000)
    #: local API deadlines (seconds): a whole request from its first byte to its last
    #: (408), writing a whole answer, and an idle keep-alive connection (closed)
    local_api_request_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    local_api_write_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    local_api_keep_alive_s: float = Field(default=30.0, gt=0, le=3600)
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    #: telemetry spool (``data_dir/spool.sqlite``): most events/heartbeats kept unsent
    #: while the broker is away; beyond it the oldest are dropped (and counted)
    spool_max_entries: int = Field(default=10_000, ge=1, le=10_000_000)
    #: the whole budget for downloading one bundle (signature and every file)
    download_timeout_s: float = Field(default=600.0, gt=0)
    #: a transfer that receives no byte for this long is broken off
    download_stall_timeout_s: float = Field(default=60.0, gt=0)
    #: deployment lifecycle: a bundle the agent died on this many times while deploying
    #: it is marked bad on this device until a newer generation arrives
    max_deploy_crashes: int = Field(default=3, ge=1, le=100)
    #: health gate: timed warm-up runs, and the largest allowed ratio of the new version's
    #: median warm-up latency to the previous version's (unset: no latency bound)
    gate_runs: int = Field(default=5, ge=1, le=1000)
    gate_max_latency_ratio: float | None = Field(default=None, gt=0)
    #: model cache: bundles kept in ``data_dir/models`` (the active and the previous
    #: version of each model are always kept, even beyond this count)
    cache_versions: int = Field(default=3, ge=1, le=1000)
    #: measured backend selection: the time budget for one model (loads included), and
    #: the largest share of one core the measurement may take from the serving model
    selection_budget_s: float = Field(default=5.0, gt=0, le=3600)
    selection_cpu_share: float = Field(default=0.5, gt=0, le=1)
    #: fit before install (docs/agent.md, "Fit before install"): the memory
    #: the device's models may take in all, MiB (unset: three quarters of the host's RAM),
    #: and the free space a download must leave on data_dir's filesystem, MiB (unset:
    #: 256 MiB, at most 5 % of that filesystem)
    memory_budget_mb: int | None = Field(default=None, ge=1, le=1 << 40)
    disk_reserve_mb: int | None = Field(default=None, ge=0, le=1 << 40)
    #: fair share (``agent.serving.fairshare``): the CPU threads the served models share
    #: by priority (the first N of the cores this process may use: the models below the
    #: highest priority are confined to some of them); None: every core it may use
    cpu_threads: int | None = Field(default=None, ge=1, le=1024)

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("control_plane_url")
    @classmethod
    def _control_plane(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http(s)://host[:port]")
        return value.rstrip("/")

    @field_validator("local_api")
    @classmethod
    def _local_api(cls, value: str) -> str:
        return loopback_address(value)

    @field_validator("local_grpc")
    @classmethod
    def _local_grpc(cls, value: str) -> str:
        return value if value in (GRPC_OFF, GRPC_AUTO) else loopback_address(value)

    @property
    def broker(self) -> BrokerAddress:
        return parse_broker_url(self.broker_url)

    @property
    def local_api_address(self) -> tuple[str, int]:
        return parse_host_port(self.local_api)

    @property
    def local_grpc_address(self) -> tuple[str, int] | None:
        """Where the gRPC local API listens (port 0: a free one); None: off."""
        if self.local_grpc == GRPC_OFF:
            return None
        if self.local_grpc != GRPC_AUTO:
            return parse_host_port(self.local_grpc)
        host, port = self.local_api_address
        return host, port + 1 if 0 < port < 65535 else 0

    @property
    def local_api_limits(self) -> Limits:
        return Limits(
            max_body_bytes=self.local_api_max_body_mb * 1024 * 1024,
            max_connections=self.local_api_max_connections,
            keep_alive_s=self.local_api_keep_alive_s,
            request_timeout_s=self.local_api_request_timeout_s,
            write_timeout_s=self.local_api_write_timeout_s,
        )


def config_from_mapping(data: dict[str, Any], *, source: str = "config") -> AgentConfig:
    """Validate a mapping; AgentConfigError naming the first bad field."""
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "config"
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if first.get("type") == "missing":
            msg = "missing required field"
        raise AgentConfigError(f"{source}: {field}: {msg}") from exc


def load_config(path: str | Path) -> AgentConfig:
    """Read ``agent.toml``; AgentConfigError with one clear line on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise AgentConfigError(f"{path}: no such config file") from exc
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AgentConfigError(f"{path}: not valid TOML: {exc}") from exc
    config = config_from_mapping(data, source=str(path))
    base = path.parent
    return config.model_copy(
        update={
            "data_dir": base / config.data_dir,
            "root_keys": [base / key for key in config.root_keys],
            "trust": base / config.trust if config.trust is not None else None,
        }
    )
