"""The signing attack suite (issue 3, point 7): what every attack test shares.

Each attack runs against a real agent (real Mosquitto, real HTTP blob server, real
signatures, ONNX Runtime, the OIP REST API on the agent's own HTTP/1.1 server) that
serves ``det`` 1.0.0, activated through a properly signed command. Each test asserts that

(a) the attack is refused with a one-line reason (``agent.last_error`` and, for a bundle,
    the FAILED ``DeploymentEvent``);
(b) nothing was installed: ``data_dir/models/`` holds the same bundle directories as
    before (the active one byte-identical), ``data_dir/staging/`` is empty, and the agent
    still reports the same model with the same bundle digest;
(c) the previous model still serves: a real HTTP OIP inference returns what a direct
    ONNX Runtime run of that model returns.

(b) and (c) are ``assert_untouched``. The attacks themselves live in
``test_attacks_bundle.py`` (bundle bytes and signatures), ``test_attacks_command.py``
(deployment commands) and ``test_attacks_trust.py`` (trust documents and keys), under
``tests/integration/``; ``test_attacks.py`` there checks the premise (v1 serves).
Most attacks share one agent per module (``module_serving``); each such test first checks
that it starts from "v1 active, nothing else installed" (``Serving.check_start``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent import Agent
from model_store import build_bundle, bundle_files, load_private_key, sign_bundle
from protocol import DeploymentEvent, DeviceStatus, EventKind, FileRef, ModelAssignment
from tests.support.blobserver import assignment_for
from tests.support.deploy import Setup, assert_served, oip_infer, open_setup, ort_run, outputs_of
from tests.support.mosquitto import run_mosquitto
from tests.support.onnx_models import two_input_model
from tests.support.ports import wait_until

#: a transient failure (the slow drip) is not retried while a test runs
SLOW_RETRY = (600.0, 600.0)
REFUSED = "refused deployment command: "
_unique = itertools.count(1)


def make_bundle(
    setup: Setup,
    version: str,
    *,
    weight: float | None = None,
    name: str = "det",
    key: Path | ec.EllipticCurvePrivateKey | None = None,
    **build: Any,
) -> Path:
    """A freshly built and signed two-input bundle in a directory of its own (two bundles
    may claim the same name and version); ``key``: a release key path or private key.
    Without ``weight`` each bundle gets a weight (so model bytes and digest) of its own."""
    n = next(_unique)
    weight = float(n) if weight is None else weight
    src = two_input_model(setup.tmp / "src" / f"{n}" / "model.onnx", weight=weight)
    out = setup.tmp / "built" / f"{name}-{version}-{n}"
    build_bundle(src, out, name=name, version=version, **build)
    signer = key if key is not None else setup.kit.release_key
    sign_bundle(out, load_private_key(signer) if isinstance(signer, Path) else signer)
    return out


def file_ref(a: ModelAssignment, path: str) -> FileRef:
    return next(f for f in a.files if f.path == path)


def with_files(a: ModelAssignment, files: Sequence[FileRef], **update: Any) -> ModelAssignment:
    """``a`` declaring ``files`` instead, its total size adjusted (so that check passes)."""
    size = a.signature.size + sum(f.size for f in files)
    return a.model_copy(update={"files": list(files), "size": size, **update})


def with_signature(setup: Setup, a: ModelAssignment, signature: bytes) -> ModelAssignment:
    """``a`` with ``signature`` served and declared as its ``model.sig``."""
    ref = FileRef(path="model.sig", sha256=setup.blobs.add(signature), size=len(signature))
    total = ref.size + sum(f.size for f in a.files)
    return a.model_copy(update={"signature": ref, "size": total})


# -- inference -------------------------------------------------------------------------


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "x": rng.standard_normal((3, 4)).astype(np.float32),
        "ids": np.array([4, 0, 9], dtype=np.int64),
    }


def oip_outputs(agent: Agent, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A real HTTP OIP (KServe v2) inference request to the agent's local API; its outputs."""
    return outputs_of(oip_infer(agent, name, inputs))


def assert_serves(agent: Agent, bundle_dir: Path) -> None:
    """The agent's OIP API answers what ONNX Runtime answers for ``bundle_dir``: exactly
    from an fp32 backend, within the accuracy guard from the bf16 one selection may pick."""
    inputs = _inputs()
    got, want = oip_outputs(agent, "det", inputs), ort_run(bundle_dir, inputs)
    assert_served(agent, got, want)


# -- the serving agent -----------------------------------------------------------------


def installed(agent: Agent) -> frozenset[str]:
    models = agent.config.data_dir / "models"
    return frozenset(p.name for p in models.iterdir()) if models.is_dir() else frozenset()


def staged(agent: Agent) -> list[str]:
    staging = agent.config.data_dir / "staging"
    return sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []


@dataclass
class Serving:
    """An agent serving ``current`` (built in ``current_dir``), and counters for commands."""

    setup: Setup
    agent: Agent
    v1: ModelAssignment
    v1_dir: Path
    generation: int
    current: ModelAssignment = field(init=False)
    current_dir: Path = field(init=False)
    baseline: frozenset[str] = field(init=False)
    deployments: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def __post_init__(self) -> None:
        self.current, self.current_dir = self.v1, self.v1_dir
        self.baseline = frozenset({self.v1.bundle_digest})

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def assignment(self, bundle_dir: Path) -> ModelAssignment:
        """Serve a bundle and describe it, under a deployment id of its own."""
        return assignment_for(self.setup.blobs, bundle_dir, deployment_id=next(self.deployments))

    def rebase(self, current: ModelAssignment, current_dir: Path) -> None:
        """What is serving and installed now is the state an attack must leave alone."""
        self.current, self.current_dir = current, current_dir
        self.baseline = installed(self.agent)

    def check_start(self) -> None:
        """A shared agent: the test starts from "v1 active and nothing else installed"."""
        assert self.current == self.v1
        assert installed(self.agent) == {self.v1.bundle_digest}
        assert staged(self.agent) == []
        assert [(m.name, m.version, m.bundle_digest) for m in self.agent.active] == [
            ("det", "1.0.0", self.v1.bundle_digest)
        ]
        assert self.agent.status == DeviceStatus.ACTIVE

    def fetched(self, ref: FileRef) -> bool:
        return any(ref.sha256 in path for path, _ in self.setup.blobs.requests)


def assert_untouched(
    s: Serving, attack: ModelAssignment | None = None, *, partial_kept: bool = False
) -> None:
    """Nothing of the attack was installed and the previous model still serves (b + c).

    ``partial_kept``: a transient failure keeps the partial download in staging for the
    retry to resume; then only ``*.part`` files and the (already verified against the
    signed digest) ``edgefleet.json`` may be there, never a complete model file."""
    agent = s.agent
    assert installed(agent) == s.baseline
    data = agent.config.data_dir
    if partial_kept and attack is not None:
        left = data / "staging" / attack.bundle_digest
        names = sorted(p.name for p in left.rglob("*") if p.is_file()) if left.exists() else []
        assert all(n.endswith(".part") or n == "edgefleet.json" for n in names), names
    else:
        assert staged(agent) == []
        if attack is not None:
            assert not (data / "staging" / attack.bundle_digest).exists()
    if attack is not None:
        assert not (data / "models" / attack.bundle_digest).exists()
    current = s.current
    assert [(m.name, m.version, m.bundle_digest) for m in agent.active] == [
        (current.name, current.version, current.bundle_digest)
    ]
    assert agent.status == DeviceStatus.ACTIVE
    on_disk = bundle_files(agent.config.data_dir / "models" / current.bundle_digest)
    assert {(f.path, f.sha256) for f in on_disk} == {(f.path, f.sha256) for f in current.files}
    assert_serves(agent, s.current_dir)


def _event(s: Serving, kind: EventKind, deployment_id: int) -> DeploymentEvent | None:
    with s.setup.watcher.lock:
        return next(
            (
                e
                for e in s.setup.watcher.events
                if e.kind == kind and e.deployment_id == deployment_id
            ),
            None,
        )


def wait_activated(s: Serving, a: ModelAssignment) -> None:
    wait_until(
        lambda: _event(s, EventKind.ACTIVATED, a.deployment_id) is not None,
        20,
        f"{a.name} {a.version} (deployment {a.deployment_id}) ACTIVATED",
    )


def wait_failed(s: Serving, a: ModelAssignment, kind: EventKind = EventKind.FAILED) -> str:
    """The one-line reason of the attack bundle's FAILED event (or RETRYING: a transient
    failure, what failed without when it retries), also in ``last_error``."""
    wait_until(
        lambda: _event(s, kind, a.deployment_id) is not None,
        20,
        f"{a.name} {a.version} (deployment {a.deployment_id}) {kind}",
    )
    event = _event(s, kind, a.deployment_id)
    assert event is not None and event.reason
    reason = event.reason
    assert "\n" not in reason
    if kind is EventKind.RETRYING:
        reason, _, when = reason.partition("; retrying ")
        assert when, reason
    expected = f"{a.name} {a.version}: {reason}"
    wait_until(lambda: s.agent.last_error == expected, 10, "the failure in last_error")
    assert _event(s, EventKind.ACTIVATED, a.deployment_id) is None
    return reason


def wait_refused(s: Serving, before: int, expected: str) -> str:
    """The agent refused one more command, for ``expected``; its one-line ``last_error``."""
    wait_until(lambda: s.agent.refused_commands > before, 10, f"command refused ({expected})")
    error = s.agent.last_error
    assert error is not None and error.startswith(REFUSED), error
    assert expected in error and "\n" not in error, error
    return error


def attack(s: Serving, a: ModelAssignment, kind: EventKind = EventKind.FAILED) -> str:
    """Command ``a`` with a properly signed command (a new generation); the failure reason
    (of a ``failed`` event, or ``retrying`` for a failure the agent retries by itself)."""
    s.setup.watcher.desire(s.next_generation(), a)
    return wait_failed(s, a, kind)


@contextmanager
def serving_v1(setup: Setup, *, key: Path | None = None, **settings: Any) -> Iterator[Serving]:
    """An agent serving det 1.0.0 (signed by release key ``key``, default the kit's),
    activated by a properly signed command (generation 1); ``settings`` go to the agent."""
    v1_dir = make_bundle(setup, "1.0.0", weight=0.5, key=key)
    v1 = assignment_for(setup.blobs, v1_dir, deployment_id=1)
    setup.watcher.desire(1, v1)
    with setup.agent(retry_backoff_s=SLOW_RETRY, **settings) as agent:
        serving = Serving(setup, agent, v1, v1_dir, generation=1)
        wait_activated(serving, v1)
        wait_until(lambda: agent.status == DeviceStatus.ACTIVE, 10, "ACTIVE")
        wait_until(lambda: agent.generation == 1, 10, "generation 1 processed")
        assert agent.last_error is None
        yield serving


@contextmanager
def module_serving(factory: pytest.TempPathFactory, name: str) -> Iterator[Serving]:
    """``serving_v1`` with a broker of its own, for a module of tests that share it."""
    tmp = factory.mktemp(name)
    with (
        run_mosquitto(tmp / "mosquitto") as broker,
        open_setup(tmp, broker) as setup,
        serving_v1(setup) as serving,
    ):
        yield serving
