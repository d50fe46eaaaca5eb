"""Start a private Mosquitto on a free loopback port with its own config.

Like a production broker it refuses packets over ``protocol.MAX_PACKET_BYTES``
(``max_packet_size``): room for the largest signed envelope, nothing bigger."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from protocol import MAX_PACKET_BYTES
from tests.support.ports import free_port, wait_for_port
from tests.support.processes import stop


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@contextmanager
def run_mosquitto(workdir: Path, extra_config: str = "") -> Iterator[Broker]:
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    log = workdir / "mosquitto.log"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        f"max_packet_size {MAX_PACKET_BYTES}\n"
        f"log_dest file {log}\n"
        "log_type error\nlog_type warning\nlog_type notice\n" + extra_config
    )
    with _serve(binary, conf, port, log) as broker:
        yield broker


@contextmanager
def run_mosquitto_config(config: Path, port: int, workdir: Path) -> Iterator[Broker]:
    """Mosquitto with a configuration made elsewhere (``broker-config``), logging to
    ``workdir/mosquitto.log`` (a copy of the file with log lines added is what runs)."""
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mosquitto.log"
    conf = workdir / "mosquitto.conf"
    # run as root (tests are), Mosquitto would drop to its own user, who cannot enter
    # pytest's private (0700) temporary directories to read the certificates
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\n"
        + config.read_text()
    )
    with _serve(binary, conf, port, log) as broker:
        yield broker


@contextmanager
def _serve(binary: str, conf: Path, port: int, log: Path) -> Iterator[Broker]:
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port)
        yield Broker(port=port, process=proc, log=log)
    finally:
        stop(proc, timeout=5)
