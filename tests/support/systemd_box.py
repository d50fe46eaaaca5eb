"""A real systemd as PID 1 in a Docker container, for the tests of
``packaging/systemd/edge-agent.service`` under systemd (``tests/system``).

``systemd_image`` builds ``docker/systemd-test.Dockerfile`` FROM the agent image
(``$EDGEFLEET_AGENT_IMAGE``, default ``edgefleet/agent:latest``, made by ``make images``;
check it with ``tests.support.docker.require_docker(AGENT_IMAGE)`` first); ``boot`` runs
it with ``/sbin/init`` as PID 1 and removes the container afterwards, even on failure; a
``Box`` copies files in, runs commands, reads ``systemctl show`` and the journal.

What the container gets, and why (found on a cgroup v1 host with Docker 20.10):

* ``--network host``: the agent reaches the test's Mosquitto and blob server on loopback
  and the test reaches the agent's loopback-only local API.
* ``--cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw``, tmpfs on ``/run``: what
  systemd as PID 1 needs to manage its units' cgroups (``--privileged`` is refused in
  this sandbox and is not needed).
* ``--cap-add SYS_ADMIN``: the unit's sandboxing (``ProtectSystem=``, ``PrivateTmp=``,
  ``ProtectProc=``...) is a mount namespace; without the capability the agent never
  starts: ``Failed to set up mount namespacing: Operation not supported``, status
  226/NAMESPACE (``DynamicUser=yes`` makes systemd refuse to run it unsandboxed).
* ``--security-opt seccomp=unconfined``: Docker's own filter blocks ``keyctl``
  (systemd logs ``Kernel keyring access prohibited, ignoring``) and would make
  ``Seccomp: 2`` in ``/proc/<pid>/status`` true of every process, so the test could not
  tell that the unit's ``SystemCallFilter=`` is in force.
* ``--security-opt apparmor=unconfined``: where AppArmor is on (Ubuntu), Docker's
  profile denies every ``mount`` (``deny mount,``), which would fail the same way
  (not seen here: this host has no AppArmor, where the option changes nothing).

Not tried: a cgroup v2 host (CI runners on Ubuntu 22.04+); systemd-nspawn booting the
same root file system is the fallback if Docker's cgroup handling gets in the way there.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.docker import docker
from tests.support.paths import REPO

AGENT_IMAGE = os.environ.get("EDGEFLEET_AGENT_IMAGE", "edgefleet/agent:latest")
DOCKERFILE = REPO / "docker" / "systemd-test.Dockerfile"
IMAGE = "edgefleet/agent-systemd:test"
RUN_OPTIONS = [
    "--network=host",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--cap-add=SYS_ADMIN",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
]
#: Every container this module starts carries it (``docker ps -f label=...``).
LABEL = "edgefleet.test=systemd"


def systemd_image(agent_image: str = AGENT_IMAGE) -> str:
    """Build ``docker/systemd-test.Dockerfile`` FROM ``agent_image`` (no build context;
    under a second when Docker's cache holds it, about 25 s when not) and return its tag.
    The image the tag named before, built FROM an older agent image, is removed."""
    before = docker("image", "inspect", "--format={{.Id}}", IMAGE, check=False).strip()
    done = subprocess.run(
        ["docker", "build", "--quiet", f"--build-arg=AGENT_IMAGE={agent_image}", "-t", IMAGE, "-"],
        input=DOCKERFILE.read_text(),
        env={**os.environ, "DOCKER_BUILDKIT": "0"},  # the legacy builder: no buildx here
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"docker build failed:\n{done.stdout}\n{done.stderr}"
    if before and before != done.stdout.strip():
        docker("image", "rm", before, check=False)  # in use by a container: it stays
    return IMAGE


@dataclass
class Box:
    """A running container with systemd as PID 1."""

    name: str

    def run(
        self, *argv: str, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` in the container as root; never raises on a non-zero exit."""
        return subprocess.run(
            ["docker", "exec", *(["-i"] if input is not None else []), self.name, *argv],
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *argv: str, timeout: float = 60) -> str:
        """``argv`` in the container, which must exit 0; its stdout."""
        done = self.run(*argv, timeout=timeout)
        assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, *argv: str) -> subprocess.Popen[str]:
        """``argv`` in the container, in the background."""
        return subprocess.Popen(
            ["docker", "exec", self.name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def put(self, path: str, data: bytes, mode: str = "0644") -> None:
        """Write ``data`` to ``path`` in the container (root-owned, ``mode``)."""
        script = 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"'
        done = self.run("sh", "-c", script, "put", path, mode, input=data)
        assert done.returncode == 0, done.stderr

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show -p ...``: property -> value."""
        out = self.check("systemctl", "show", unit, "-p", ",".join(properties))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *argv: str) -> list[dict[str, str]]:
        """Journal entries (``journalctl -o json``, oldest first), e.g. ``-u UNIT``."""
        out = self.check("journalctl", "--no-pager", "-o", "json", *argv)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@contextmanager
def boot(image: str) -> Iterator[Box]:
    """``image`` with ``/sbin/init`` as PID 1, up to ``systemctl is-system-running``;
    the container is removed on the way out, whatever happened."""
    name = f"edgefleet-systemd-{uuid.uuid4().hex[:8]}"
    try:
        docker("run", "--detach", f"--name={name}", f"--label={LABEL}", *RUN_OPTIONS, image)
        box = Box(name)
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = box.run("systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        failed = box.run("systemctl", "--failed", "--no-legend").stdout
        assert state == "running", f"systemd did not boot: {state!r}\n{failed}"
        yield box
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
