"""ControlPlaneSettings: environment names, defaults, URL handling, secrets masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane.errors import ConfigError
from controlplane.settings import (
    ControlPlaneSettings,
    default_client_id,
    mask_url,
    parse_mqtt_url,
    sqlalchemy_url,
)

ENV = (
    "EDGEFLEET_DATA_DIR",
    "DATABASE_URL",
    "MQTT_URL",
    "EDGEFLEET_ROOT_KEYS",
    "EDGEFLEET_TRUST",
    "EDGEFLEET_CONTROL_PLANE_KEY",
    "EDGEFLEET_COMMAND_TTL",
    "EDGEFLEET_MQTT_CLIENT_ID",
    "EDGEFLEET_HTTP_PORT",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = ControlPlaneSettings()
    assert settings.data_dir == Path("edgefleet-data")
    assert settings.db_url == f"sqlite:///{Path('edgefleet-data') / 'edgefleet.db'}"
    assert settings.mqtt == parse_mqtt_url("mqtt://127.0.0.1:1883")
    assert settings.root_keys == [] and settings.trust is None
    assert settings.control_plane_key is None
    assert settings.command_ttl == 7 * 24 * 3600
    assert settings.mqtt_client_id == default_client_id(None)


def test_default_client_id_is_stable_per_host_and_port_and_distinct_between_them() -> None:
    a = ControlPlaneSettings(http_port=8080).mqtt_client_id
    assert a == ControlPlaneSettings(http_port=8080).mqtt_client_id  # persistent session
    assert a != ControlPlaneSettings(http_port=8081).mqtt_client_id  # a second replica
    assert a.startswith("edgefleet-cp-") and a.endswith("-8080")
    assert default_client_id(8080, "edge box/01") == "edgefleet-cp-edge-box-01-8080"
    assert default_client_id(1, "###") == "edgefleet-cp-localhost-1"


def test_client_id_from_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_MQTT_CLIENT_ID", "cp-east")
    assert ControlPlaneSettings(http_port=8080).mqtt_client_id == "cp-east"


def test_http_port_is_checked() -> None:
    with pytest.raises(ValueError, match="65535"):
        ControlPlaneSettings(http_port=70000)


@pytest.mark.parametrize("ttl", ["0", "-5", "59", "forever"])
def test_command_ttl_is_checked(monkeypatch: pytest.MonkeyPatch, ttl: str) -> None:
    monkeypatch.setenv("EDGEFLEET_COMMAND_TTL", ttl)
    with pytest.raises(ValueError, match=r"command_ttl|EDGEFLEET_COMMAND_TTL"):
        ControlPlaneSettings()


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEFLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/edgefleet")
    monkeypatch.setenv("MQTT_URL", "mqtt://cp:s3cret@broker:1884")
    monkeypatch.setenv("EDGEFLEET_ROOT_KEYS", f"{tmp_path}/a.pub, {tmp_path}/keys")
    monkeypatch.setenv("EDGEFLEET_TRUST", f"{tmp_path}/trust.json")
    monkeypatch.setenv("EDGEFLEET_CONTROL_PLANE_KEY", f"{tmp_path}/cp.key")
    monkeypatch.setenv("EDGEFLEET_COMMAND_TTL", "3600")
    monkeypatch.setenv("EDGEFLEET_MQTT_CLIENT_ID", "cp-1")
    settings = ControlPlaneSettings()
    assert settings.data_dir == tmp_path
    assert settings.db_url == "postgresql+psycopg://u:p@db:5432/edgefleet"
    assert settings.mqtt.host == "broker" and settings.mqtt.port == 1884
    assert (settings.mqtt.username, settings.mqtt.password) == ("cp", "s3cret")
    assert settings.root_keys == [tmp_path / "a.pub", tmp_path / "keys"]
    assert settings.trust == tmp_path / "trust.json"
    assert settings.control_plane_key == tmp_path / "cp.key"
    assert settings.command_ttl == 3600
    assert settings.mqtt_client_id == "cp-1"
    assert "s3cret" not in settings.describe() and ":p@" not in settings.describe()


def test_keyword_arguments_override_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MQTT_URL", "mqtt://env:1883")
    flags: dict[str, Any] = {
        "mqtt_url": "mqtt://flag:1999",
        "data_dir": tmp_path,
        "root_keys": "x.pub",
        "trust": "t.json",
        "control_plane_key": "cp.key",
    }
    settings = ControlPlaneSettings(**flags)  # as the CLI passes its flags
    assert settings.mqtt.host == "flag" and settings.root_keys == [Path("x.pub")]
    assert (settings.trust, settings.control_plane_key) == (Path("t.json"), Path("cp.key"))
    assert settings.db_url == f"sqlite:///{tmp_path / 'edgefleet.db'}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://a@h/db", "postgresql+psycopg://a@h/db"),
        ("postgresql+psycopg://a@h/db", "postgresql+psycopg://a@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_sqlalchemy_url(url: str, expected: str) -> None:
    assert sqlalchemy_url(url) == expected


def test_mqtt_url_forms() -> None:
    assert parse_mqtt_url("mqtt://h").port == 1883
    assert parse_mqtt_url("mqtts://h").tls is True
    assert parse_mqtt_url("mqtt://u%40x:p%3A@h:1").username == "u@x"
    for bad in ("http://h:1", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ConfigError):
            parse_mqtt_url(bad)


def test_mask_url() -> None:
    assert mask_url("mqtt://u:pw@h:1883") == "mqtt://u:***@h:1883"
    assert mask_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert mask_url("mqtt://h:1883") == "mqtt://h:1883"
