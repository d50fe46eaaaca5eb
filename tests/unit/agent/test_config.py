"""agent.toml loading: every problem is one clear AgentConfigError line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, parse_broker_url
from agent.errors import AgentConfigError

GOOD = """
device_id = "store-eu-001"
fleet = "store-eu"
broker_url = "mqtt://store-eu-001:s3cret@127.0.0.1:1883"
control_plane_url = "http://127.0.0.1:8080/"
data_dir = "data"
root_keys = ["keys/root.pub"]
trust = "trust.json"
local_api = "127.0.0.1:0"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_good_config_resolves_paths_against_the_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.device_id == "store-eu-001"
    assert config.data_dir == tmp_path / "data"
    assert config.root_keys == [tmp_path / "keys/root.pub"]
    assert config.trust == tmp_path / "trust.json"
    assert config.download_timeout_s == 600 and config.download_stall_timeout_s == 60
    assert config.control_plane_url == "http://127.0.0.1:8080"
    assert config.local_api_address == ("127.0.0.1", 0)
    assert config.heartbeat_interval_s == 30
    limits = config.local_api_limits
    assert (limits.max_body_bytes, limits.max_connections) == (64 * 1024 * 1024, 64)
    assert (limits.request_timeout_s, limits.write_timeout_s, limits.keep_alive_s) == (10, 10, 30)
    assert config.broker.password == "s3cret"
    assert "s3cret" not in config.broker.masked()


def test_local_api_bounds_reach_its_limits(tmp_path: Path) -> None:
    text = GOOD + "\n".join(
        [
            "local_api_max_body_mb = 8",
            "local_api_max_connections = 16",
            "local_api_request_timeout_s = 2.5",
            "local_api_write_timeout_s = 4",
            "local_api_keep_alive_s = 5",
            "",
        ]
    )
    limits = load_config(_write(tmp_path, text)).local_api_limits
    assert (limits.max_body_bytes, limits.max_connections) == (8 * 1024 * 1024, 16)
    assert (limits.request_timeout_s, limits.write_timeout_s, limits.keep_alive_s) == (2.5, 4, 5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "device_id = \n"))


def test_missing_field_is_named(tmp_path: Path) -> None:
    text = GOOD.replace('fleet = "store-eu"\n', "")
    with pytest.raises(AgentConfigError, match=r"fleet: missing required field"):
        load_config(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"mqtt://store-eu-001:s3cret@127.0.0.1:1883"', '"http://broker"', "broker_url"),
        ('"127.0.0.1:0"', '"localhost"', "local_api"),
        ('device_id = "store-eu-001"', 'device_id = "a/b#"', "device_id"),
        ('"http://127.0.0.1:8080/"', '"ftp://x"', "control_plane_url"),
        ('local_api = "127.0.0.1:0"', "heartbeat_interval_s = 0", "heartbeat_interval_s"),
        ('local_api = "127.0.0.1:0"', 'colour = "blue"', "colour"),
        ('local_api = "127.0.0.1:0"', "local_api_max_body_mb = 0", "local_api_max_body_mb"),
        (
            'local_api = "127.0.0.1:0"',
            "local_api_max_connections = 100000",
            "local_api_max_connections",
        ),
        (
            'local_api = "127.0.0.1:0"',
            "local_api_request_timeout_s = 0",
            "local_api_request_timeout_s",
        ),
        (
            'local_api = "127.0.0.1:0"',
            "local_api_write_timeout_s = -1",
            "local_api_write_timeout_s",
        ),
        ('local_api = "127.0.0.1:0"', "local_api_keep_alive_s = 7200", "local_api_keep_alive_s"),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    with pytest.raises(AgentConfigError) as info:
        load_config(_write(tmp_path, GOOD.replace(old, new)))
    message = str(info.value)
    assert f": {field}: " in message and "\n" not in message


def test_broker_url_parsing() -> None:
    assert parse_broker_url("mqtt://h").port == 1883
    assert parse_broker_url("mqtts://h").port == 8883
    with pytest.raises(ValueError):
        parse_broker_url("mqtt://h:notaport")


@pytest.mark.parametrize(
    "address", ["127.0.0.1:0", "127.8.9.10:8500", "[::1]:8500", "localhost:8500", "LOCALHOST:1"]
)
def test_local_api_on_loopback_is_accepted(tmp_path: Path, address: str) -> None:
    text = GOOD.replace('local_api = "127.0.0.1:0"', f'local_api = "{address}"')
    assert load_config(_write(tmp_path, text)).local_api == address


@pytest.mark.parametrize(
    "address", ["0.0.0.0:8500", "[::]:8500", "192.168.1.20:8500", "edge-box.local:8500"]
)
def test_local_api_off_loopback_is_refused(tmp_path: Path, address: str) -> None:
    text = GOOD.replace('local_api = "127.0.0.1:0"', f'local_api = "{address}"')
    with pytest.raises(AgentConfigError) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert ": local_api: " in message and "not a loopback address" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("lines", "address"),
    [
        ('local_api = "127.0.0.1:8500"', None),  # unset: off (grpcio is never loaded)
        ('local_api = "127.0.0.1:8500"\nlocal_grpc = "auto"', ("127.0.0.1", 8501)),  # port + 1
        ('local_api = "[::1]:9000"\nlocal_grpc = "auto"', ("::1", 9001)),
        ('local_api = "127.0.0.1:0"\nlocal_grpc = "auto"', ("127.0.0.1", 0)),  # REST's free port
        ('local_api = "127.0.0.1:0"\nlocal_grpc = "localhost:8001"', ("localhost", 8001)),
        ('local_api = "127.0.0.1:0"\nlocal_grpc = "off"', None),
    ],
)
def test_local_grpc_address(tmp_path: Path, lines: str, address: tuple[str, int] | None) -> None:
    text = GOOD.replace('local_api = "127.0.0.1:0"', lines)
    assert load_config(_write(tmp_path, text)).local_grpc_address == address


@pytest.mark.parametrize("value", ["0.0.0.0:8001", "8001", "on"])
def test_local_grpc_off_loopback_or_malformed_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(AgentConfigError) as info:
        load_config(_write(tmp_path, f'{GOOD}local_grpc = "{value}"\n'))
    message = str(info.value)
    assert ": local_grpc: " in message and "\n" not in message
