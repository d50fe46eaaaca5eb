"""docker/compose.yaml as a test drives it: a project of its own with free host ports,
``docker compose`` (Compose v2) or else ``docker-compose`` (v1.29+), always torn down."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def compose_command() -> list[str]:
    """``docker compose`` where the v2 plugin answers, else ``docker-compose``."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("neither `docker compose` nor `docker-compose` is installed")


@dataclass
class Stack:
    project: str
    http_ports: tuple[int, int]
    env: dict[str, str]
    command: list[str]

    def run(
        self, *args: str, timeout: float = 300, check: bool = True, input: str | None = None
    ) -> str:
        """``docker compose -p PROJECT -f compose.yaml ARGS``: its stdout."""
        done = subprocess.run(
            [*self.command, "-p", self.project, "-f", str(COMPOSE_FILE), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)}: exit {done.returncode}: {done.stderr[-3000:]}"
            )
        return done.stdout

    def url(self, replica: int = 1) -> str:
        return f"http://127.0.0.1:{self.http_ports[replica - 1]}"

    def volume(self, name: str) -> str:
        return f"{self.project}_{name}"


@contextmanager
def compose_stack() -> Iterator[Stack]:
    """``up -d`` a project of this test's own; ``down -v`` whatever happened (its logs
    printed first if the test failed)."""
    ports = (free_port(), free_port())
    env = {
        **os.environ,
        "EDGEFLEET_HTTP_PORT": str(ports[0]),
        "EDGEFLEET_HTTP_PORT_2": str(ports[1]),
        "EDGEFLEET_MQTT_PORT": str(free_port()),
    }
    stack = Stack(f"efct{os.getpid()}", ports, env, compose_command())
    ok = False
    try:
        stack.run("up", "-d", timeout=600)
        yield stack
        ok = True
    finally:
        if not ok:
            print(stack.run("logs", "--no-color", "--tail", "40", check=False, timeout=60))
        stack.run("down", "-v", "--remove-orphans", "-t", "20", check=False, timeout=300)
