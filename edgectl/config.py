"""Where ``edgectl`` finds the control plane and its API token.

Each setting comes from, in order: the command-line flag, the environment, the config
file, the default.

| setting | flag      | environment      | config file key | default                  |
|---------|-----------|------------------|-----------------|--------------------------|
| URL     | ``--url`` | ``EDGECTL_URL``  | ``url``         | ``http://127.0.0.1:8080`` |
| token   | ``--token`` | ``EDGECTL_TOKEN`` | ``token``     | none                     |

The config file is TOML at ``~/.config/edgefleet/edgectl.toml`` (``EDGECTL_CONFIG``
names another; a missing file is fine)::

    url = "https://edgefleet.example.com"
    token = "efk_..."

Like ssh with its keys, edgectl warns (one line on stderr) when a config file holding a
token can be read by other users: ``chmod 600`` it.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edgectl.client import DEFAULT_URL
from edgectl.errors import UsageError

URL_ENV = "EDGECTL_URL"
TOKEN_ENV = "EDGECTL_TOKEN"
CONFIG_ENV = "EDGECTL_CONFIG"
DEFAULT_CONFIG = Path("~/.config/edgefleet/edgectl.toml")
#: The hint printed with a 401/403 from the control plane.
TOKEN_HINT = f"set {TOKEN_ENV} or --token (or token in {DEFAULT_CONFIG})"


@dataclass(frozen=True)
class FileConfig:
    """What the config file says (None: not set there)."""

    url: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Connection:
    """The control plane to talk to and the token to show it."""

    url: str
    token: str | None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file's path: ``EDGECTL_CONFIG``, else the default."""
    env = os.environ if env is None else env
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()


def _string(data: Mapping[str, object], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"config file {path}: {key} must be a non-empty string")
    return value.strip()


def load_config(path: Path, *, warn: TextIO | None = None) -> FileConfig:
    """Read the config file (missing: empty); UsageError (one line) if it is unusable."""
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return FileConfig()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
    config = FileConfig(url=_string(data, "url", path), token=_string(data, "token", path))
    if config.token and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"edgectl: warning: config file {path} holds a token and is accessible by "
            f"others (mode {stat.S_IMODE(mode):o}): chmod 600 {path}",
            file=warn or sys.stderr,
        )
    return config


def resolve(
    *,
    url: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    warn: TextIO | None = None,
) -> Connection:
    """URL and token by precedence: flag > environment > config file > default.

    The config file is read only when a flag and the environment leave something unset.
    """
    env = os.environ if env is None else env
    url = url or env.get(URL_ENV) or None
    token = token or env.get(TOKEN_ENV) or None
    if url is None or token is None:
        file = load_config(config_path(env), warn=warn)
        url = url or file.url
        token = token or file.token
    return Connection(url=url or DEFAULT_URL, token=token.strip() if token else None)


def apply(args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> None:
    """Set ``args.url`` and ``args.token`` by precedence (see :func:`resolve`)."""
    connection = resolve(
        url=getattr(args, "url", None), token=getattr(args, "token", None), env=env
    )
    args.url, args.token = connection.url, connection.token
