"""The generated production broker configuration (``controlplane.broker_config``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from controlplane.broker_config import (
    DEFAULT_IDENTITY,
    _uid_gid,
    acl_text,
    build,
    mosquitto_conf,
    write,
)
from model_store import generate_private_key
from model_store.device_certs import ca_certificate
from protocol import MAX_PACKET_BYTES


def test_acl_confines_devices_to_their_own_topics() -> None:
    lines = acl_text([DEFAULT_IDENTITY, "_cp-2"]).splitlines()
    patterns = [line for line in lines if line.startswith("pattern ")]
    assert patterns == [
        "pattern read edgefleet/v1/devices/%u/desired",
        "pattern read edgefleet/v1/trust",
        "pattern read edgefleet/v1/acks/%u",  # the control plane's acks of its reports
        "pattern write edgefleet/v1/devices/%u/state",
        "pattern write edgefleet/v1/devices/%u/events",
        "pattern write edgefleet/v1/devices/%u/heartbeat",
        "pattern write edgefleet/v1/devices/%u/availability",
    ]
    assert not any("readwrite" in p or "#" in p for p in patterns)
    for identity in (DEFAULT_IDENTITY, "_cp-2"):
        i = lines.index(f"user {identity}")
        assert lines[i + 1] == "topic readwrite edgefleet/v1/#"


def test_listener_requires_certificates_and_binds_identity(tmp_path: Path) -> None:
    conf = mosquitto_conf(tmp_path, port=8883, bind="0.0.0.0").splitlines()
    for line in (
        "listener 8883 0.0.0.0",
        "allow_anonymous false",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        f"max_packet_size {MAX_PACKET_BYTES}",
        f"crlfile {tmp_path.resolve() / 'crl.pem'}",
    ):
        assert line in conf
    assert not any(line.startswith("persistence") for line in conf)


def test_persistence_keeps_retained_messages_in_the_given_directory(tmp_path: Path) -> None:
    conf = mosquitto_conf(
        tmp_path, port=8883, bind="0.0.0.0", persistence=Path("/var/lib/mosquitto")
    ).splitlines()
    assert conf[3:5] == ["persistence true", "persistence_location /var/lib/mosquitto/"]
    # global settings: before the listener, or per_listener_settings would scope them
    assert conf.index("persistence true") < conf.index("listener 8883 0.0.0.0")


@pytest.mark.parametrize(
    ("user", "expected"), [("10002", (10002, 10002)), ("10002:10003", (10002, 10003))]
)
def test_the_broker_user_may_be_a_numeric_id(user: str, expected: tuple[int, int]) -> None:
    assert _uid_gid(user) == expected


def test_every_file_is_made_and_keys_are_private(tmp_path: Path) -> None:
    ca = generate_private_key()
    config = build(
        ca,
        tmp_path,
        hosts=["127.0.0.1", "broker.example.com"],
        port=8883,
        bind="127.0.0.1",
        identities=[DEFAULT_IDENTITY],
        revoked=[(12345, datetime(2026, 12, 1, tzinfo=UTC))],
        now=datetime.now(UTC),
    )
    write(config, tmp_path / "out")
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert names == {
        "mosquitto.conf",
        "acl",
        "ca.crt",
        "server.crt",
        "server.key",
        "crl.pem",
        f"{DEFAULT_IDENTITY}.crt",
        f"{DEFAULT_IDENTITY}.key",
    }
    for key in ("server.key", f"{DEFAULT_IDENTITY}.key"):
        assert (out / key).stat().st_mode & 0o777 == 0o600
    server = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    assert server.issuer == ca_certificate(ca).subject
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example.com"]
    crl = x509.load_pem_x509_crl((out / "crl.pem").read_bytes())
    assert [r.serial_number for r in crl] == [12345]


def test_crl_only_refreshes_the_list_of_a_configuration_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controlplane.broker_config_cmd import main
    from model_store import write_keypair

    ca, _ = write_keypair(tmp_path, "ca")
    out = tmp_path / "conf"
    common = ["--out", str(out), "--device-ca-key", str(ca), "--data-dir", str(tmp_path / "d")]
    assert main([*common, "--crl-only"]) == 2
    assert "holds no configuration to refresh" in capsys.readouterr().err
    assert main(common) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main([*common, "--crl-only"]) == 0
    assert "kill -HUP" in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {n for n in after if after[n] != before[n]} == {"crl.pem"}
    x509.load_pem_x509_crl(after["crl.pem"])
