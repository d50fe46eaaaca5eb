"""A real one-device fleet for the agent benchmarks.

The control plane process (SQLite, embedded MQTT broker), a root of trust made as
``edgectl demo`` makes it, and one ``edge-agent run`` process with its own agent.toml and
a fixed loopback port for its local API; models are pushed with ``edgectl``'s own push
code (signed with the release key). Nothing is faked: the device downloads, verifies,
gates and activates what is pushed. Each push's rollout has the control plane's health
gate off (``ROLLOUT_STRATEGY``): it would hold the rollout "running" until the device had
reported ``min_requests`` requests on the new version, and the control plane refuses the
next push of the model while one runs; what is measured here is the device.

The control plane is started with a fresh bootstrap admin API token
(``EDGEFLEET_ADMIN_TOKEN``, made and kept as ``edgectl demo`` does, in ``keys/admin.token``)
and every API call sends it. A wait that the control plane refuses (401, 403) stops at
once with its answer; a wait that times out names the last error it saw; and when the
fleet fails, the tail of each child's log is printed to stderr before the work dir goes.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from edgectl.client import ControlPlaneClient
from edgectl.demo import provision_admin_token, provision_trust
from edgectl.errors import EdgectlError, ServerError, UnreachableError
from edgectl.processes import ChildProcess, console_command, free_port
from edgectl.push import push_model

logger = logging.getLogger(__name__)

FLEET = "bench"
DEVICE = "bench-001"
#: answers that no amount of waiting changes
REFUSALS = (401, 403)
#: every push's rollout: one batch, no health gate (nothing to wait for once it is active)
ROLLOUT_STRATEGY = {"gate": {"enabled": False}}
#: lines of each child's log printed when the fleet fails
LOG_TAIL = 30


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment (for a child to inherit) for a while."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    children: list[ChildProcess],
    interval: float = 0.25,
) -> None:
    """Poll ``predicate()`` until true. A child that died, a refusal from the control
    plane (401/403) or any other error of ``predicate`` fails at once; an unreachable
    control plane or another error answer is retried, and the last is named if the wait
    times out."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        for child in children:
            child.check_alive()
        try:
            if predicate():
                return
        except ServerError as exc:
            if exc.status_code in REFUSALS:
                raise EdgectlError(f"waiting for {what}: {exc}") from exc
            last = str(exc)
        except UnreachableError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            why = f"; last error: {last}" if last else ""
            raise EdgectlError(f"timed out after {timeout:.0f}s waiting for {what}{why}")
        time.sleep(interval)


class BenchFleet:
    def __init__(self, root: Path | None = None, *, agent_user: str | None = None) -> None:
        """``agent_user``: run the agent as that user (needs root; the interpreter and its
        packages must be readable by it): it then owns none of its runtime's files, as
        under the shipped systemd unit. Its data directory is handed to it."""
        self.agent_user = agent_user
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="ef-bench-")
        self.root = root or Path(self._tmp.name if self._tmp else ".")
        self.keys = self.root / "keys"
        self.trust = provision_trust(self.keys)
        self.token = provision_admin_token(self.keys)
        self.http_port, self.broker_port, self.api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.local_api = f"http://127.0.0.1:{self.api_port}"
        self.children: list[ChildProcess] = []
        self.agent: ChildProcess | None = None
        self.client = ControlPlaneClient(self.url, token=self.token)
        self.config = self.root / "agent.toml"
        self.data_dir = self.root / "device"
        self.config.write_text(
            "\n".join(
                [
                    f'device_id = "{DEVICE}"',
                    f'fleet = "{FLEET}"',
                    f'broker_url = "mqtt://127.0.0.1:{self.broker_port}"',
                    f'control_plane_url = "{self.url}"',
                    f'data_dir = "{self.data_dir}"',
                    f'root_keys = ["{self.keys / "root.pub"}"]',
                    f'trust = "{self.trust}"',
                    f'local_api = "127.0.0.1:{self.api_port}"',
                    "heartbeat_interval_s = 5.0",
                ]
            )
            + "\n"
        )

    def __enter__(self) -> BenchFleet:
        with _environment({"EDGEFLEET_ADMIN_TOKEN": self.token}):
            self.children.append(
                ChildProcess(
                    "control plane",
                    [
                        *console_command("edgefleet-controlplane", "controlplane.cli"),
                        *("--port", str(self.http_port), "--embedded-broker"),
                        *("--broker-port", str(self.broker_port)),
                        *("--data-dir", str(self.root / "controlplane")),
                        *("--root-keys", str(self.keys / "root.pub"), "--trust", str(self.trust)),
                        *("--control-plane-key", str(self.keys / "control-plane.key")),
                        *("--device-ca-key", str(self.keys / "device-ca.key")),
                    ],
                    self.root / "logs" / "controlplane.log",
                )
            )
        try:
            wait_for(
                lambda: bool(self.client.health()),
                timeout=60,
                what="the control plane",
                children=self.children,
            )
            self.client.devices()  # the token works: fail now, with the answer, if not
            # the agent enrolls at its first start with a one-time token, as a real one does
            token = self.client.create_enrollment(DEVICE, FLEET, 3600)["token"]
            with self.config.open("a") as fh:
                fh.write(f'enrollment_token = "{token}"\n')
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_agent()
        for child in reversed(self.children):
            child.stop()
        if exc is not None:
            _print_tails(sorted((self.root / "logs").glob("*.log")))
        self.client.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def start_agent(self) -> float:
        """Start ``edge-agent run``; the monotonic time just before the spawn."""
        if self.agent_user is not None:
            _hand_over(self.root, self.data_dir, self.agent_user)
        started = time.monotonic()
        self.agent = ChildProcess(
            "agent",
            [*console_command("edge-agent", "agent.cli"), "run", "--config", str(self.config)],
            self.root / "logs" / "agent.log",
            user=self.agent_user,
        )
        return started

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop(timeout=30)
            self.agent = None

    def device(self) -> dict[str, Any] | None:
        return next((d for d in self.client.devices() if d.get("id") == DEVICE), None)

    def push(
        self,
        model: Path,
        *,
        name: str,
        version: str,
        timeout: float = 120.0,
        selection: dict[str, Any] | None = None,
    ) -> int:
        """Push a model to the fleet and wait until the device runs that version; the id
        of its rollout, which may still be running for a moment (``wait_rollout``).
        ``selection``: the bundle's ``pin`` / ``tolerance`` (signed with it)."""
        result = push_model(
            self.client,
            model,
            name=name,
            version=version,
            fleet=FLEET,
            key_path=self.keys / "release.key",
            strategy=ROLLOUT_STRATEGY,
            selection=selection,
        )
        wait_for(
            lambda: (d := self.device()) is not None and d.get("active_version") == version,
            timeout=timeout,
            what=f"{DEVICE} to activate {name} {version}",
            children=[*self.children, *([self.agent] if self.agent else [])],
        )
        if result.rollout is None:
            raise EdgectlError(f"pushing {name} {version} to fleet {FLEET} started no rollout")
        return int(result.rollout["id"])

    def wait_rollout(self, rollout_id: int, timeout: float = 60.0) -> None:
        """Wait until the rollout is completed (the control plane refuses another rollout
        of the model to the fleet while one runs); an aborted or paused one fails."""

        def completed() -> bool:
            state = self.client.rollout(rollout_id).get("state")
            if state in ("aborted", "paused"):
                raise EdgectlError(f"rollout {rollout_id} is {state}")
            return state == "completed"

        wait_for(
            completed,
            timeout=timeout,
            what=f"rollout {rollout_id} to complete",
            children=[*self.children, *([self.agent] if self.agent else [])],
        )

    def serve(self, model: Path, *, name: str, version: str) -> None:
        """Start the agent, wait until it registers, push ``model`` and wait until it runs
        and its rollout is completed."""
        self.start_agent()
        self.wait_registered()
        self.wait_rollout(self.push(model, name=name, version=version))

    def wait_registered(self, timeout: float = 60.0) -> None:
        wait_for(
            lambda: (d := self.device()) is not None and bool(d.get("online")),
            timeout=timeout,
            what=f"{DEVICE} to register",
            children=[*self.children, *([self.agent] if self.agent else [])],
        )

    def infer_ok(self, name: str, body: dict[str, object], http: httpx.Client) -> bool:
        try:
            response = http.post(f"{self.local_api}/v2/models/{name}/infer", json=body)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _print_tails(logs: list[Path]) -> None:
    """The last ``LOG_TAIL`` lines of each log, to stderr (the work dir is about to go)."""
    for path in logs:
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        except OSError as exc:
            logger.warning("cannot read %s: %s", path, exc)
            continue
        print(f"--- last {len(lines)} lines of {path.name} ---", file=sys.stderr)
        for line in lines:
            print(line, file=sys.stderr)


def oip_json_body(feeds: Mapping[str, np.ndarray]) -> dict[str, object]:
    """An OIP JSON request body for ``feeds`` (float32 tensors)."""
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(np.asarray(v).shape),
                "datatype": "FP32",
                "data": np.asarray(v).ravel().tolist(),
            }
            for name, v in feeds.items()
        ]
    }


def _hand_over(root: Path, data: Path, user: str) -> None:
    """Let ``user`` reach what the agent reads (``agent.toml``, ``keys/root.pub``,
    ``keys/trust.json``: world-readable files in 0700 directories) and own its data
    directory; the private keys, the admin token and the logs stay the caller's."""
    import pwd  # POSIX only, as is running as another user

    entry = pwd.getpwnam(user)
    for reached in (root, root / "keys"):
        reached.chmod(reached.stat().st_mode | 0o111)  # traverse only, no listing
    data.mkdir(exist_ok=True)
    for path in (data, *data.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
