"""edgectl's URL/token resolution: flag > env > config file > default, and the file checks."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from edgectl.client import DEFAULT_URL, ControlPlaneClient
from edgectl.config import Connection, apply, config_path, load_config, resolve
from edgectl.errors import UsageError

FILE_URL, FILE_TOKEN = "http://file.example:8080", "efk_from-the-config-file"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "edgectl.toml"
    path.write_text(f'url = "{FILE_URL}"\ntoken = "{FILE_TOKEN}"\n')
    path.chmod(0o600)
    return path


def test_precedence_flag_env_file_default(config_file: Path, tmp_path: Path) -> None:
    env = {"EDGECTL_CONFIG": str(config_file)}
    assert resolve(env=env) == Connection(FILE_URL, FILE_TOKEN)
    env |= {"EDGECTL_URL": "http://env:1", "EDGECTL_TOKEN": "efk_from-env-0000000"}
    assert resolve(env=env) == Connection("http://env:1", "efk_from-env-0000000")
    assert resolve(url="http://flag:2", token="efk_flag-token-00000", env=env) == Connection(
        "http://flag:2", "efk_flag-token-00000"
    )
    # each setting on its own: a flag URL with the file's token
    only_file = {"EDGECTL_CONFIG": str(config_file)}
    assert resolve(url="http://flag:2", env=only_file) == Connection("http://flag:2", FILE_TOKEN)
    # nothing anywhere: the default URL, no token
    none = {"EDGECTL_CONFIG": str(tmp_path / "missing.toml")}
    assert resolve(env=none) == Connection(DEFAULT_URL, None)


def test_default_config_path_is_under_the_home_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    assert config_path({}) == Path("/home/op/.config/edgefleet/edgectl.toml")
    assert config_path({"EDGECTL_CONFIG": "/etc/edgectl.toml"}) == Path("/etc/edgectl.toml")


def test_apply_sets_url_and_token_on_parsed_arguments(config_file: Path) -> None:
    args = argparse.Namespace(url=None, token=None)
    apply(args, env={"EDGECTL_CONFIG": str(config_file)})
    assert (args.url, args.token) == (FILE_URL, FILE_TOKEN)


def test_a_config_file_others_can_read_gets_a_warning(config_file: Path) -> None:
    warn = io.StringIO()
    load_config(config_file, warn=warn)
    assert warn.getvalue() == ""
    config_file.chmod(0o644)
    load_config(config_file, warn=warn)
    line = warn.getvalue()
    assert line.count("\n") == 1 and "accessible by others" in line and "chmod 600" in line
    assert FILE_TOKEN not in line


def test_a_readable_file_without_token_is_not_a_worry(tmp_path: Path) -> None:
    path = tmp_path / "edgectl.toml"
    path.write_text(f'url = "{FILE_URL}"\n')
    path.chmod(0o644)
    warn = io.StringIO()
    assert load_config(path, warn=warn).url == FILE_URL
    assert warn.getvalue() == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [("url = ", "not valid TOML"), ("token = 5", "token must be a non-empty string")],
)
def test_a_broken_config_file_is_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "edgectl.toml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_the_client_refuses_a_token_it_cannot_send() -> None:
    with pytest.raises(UsageError, match="invalid API token"):
        ControlPlaneClient("http://127.0.0.1:1", token="efk_has a space")
