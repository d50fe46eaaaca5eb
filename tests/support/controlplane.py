"""Run the control plane as a real process, and build/upload signed bundles for tests.

``run_controlplane(workdir, mqtt_url=..., trust_kit=kit)`` starts
``python -m controlplane.cli`` with the kit's root key, trust document and control-plane
key on a free loopback port, waits for ``/healthz`` and stops it at exit; its log is
``workdir/controlplane.log``. ``settings(...)`` and ``signer(...)`` give the same
configuration in-process; ``trust_update(...)`` signs a next trust version and
``open_command(...)`` verifies a published deployment command like an agent would.

``signed_bundle(...)`` builds a bundle from a real ONNX model with model_store and signs
it; ``upload_bundle(http, bundle)`` PUTs its blobs and registers the version.

``state_report(...)`` and ``register_version(engine, ...)`` feed ingestion tests.

Auth: every control plane started here (process or in-process ``settings``) bootstraps
the admin API token ``ADMIN_TOKEN``; ``auth_headers()`` is its ``Authorization`` header
and ``api_client(url)`` an ``httpx.Client`` that sends it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import crud
from controlplane.commands import CommandSigner
from controlplane.settings import ControlPlaneSettings
from controlplane.trust import TrustStore
from model_store import (
    SIGNATURE_FILENAME,
    build_bundle,
    build_trust_document,
    bundle_files,
    decode_envelope,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    open_envelope,
    sha256_file,
    sign_bundle,
)
from protocol import (
    DESIRED_STATE_PAYLOAD_TYPE,
    DesiredState,
    DeviceStatus,
    FileRef,
    StateReport,
    decode,
    encode,
)
from tests.support.onnx_models import affine_model
from tests.support.ports import free_port
from tests.support.processes import stop
from tests.support.trust import TrustKit

_REPO = Path(__file__).resolve().parents[2]

#: The bootstrap admin API token of every control plane the tests start.
ADMIN_TOKEN = "efk_tests-admin-token-0123456789abcdefghijklmnopq"


def auth_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    """The ``Authorization: Bearer`` header for ``token`` (default: the admin token)."""
    return {"Authorization": f"Bearer {token}"}


def api_client(url: str, *, token: str = ADMIN_TOKEN, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` on ``url`` that authenticates with ``token``."""
    headers = auth_headers(token) | dict(kwargs.pop("headers", None) or {})
    return httpx.Client(base_url=url, headers=headers, **kwargs)


@dataclass
class ControlPlaneProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    #: The admin API token it bootstrapped (``EDGEFLEET_ADMIN_TOKEN``; empty: it
    #: generated one and printed it in its log).
    token: str = ADMIN_TOKEN

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header with the admin token."""
        return auth_headers(self.token)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on this control plane, authenticated as admin."""
        return api_client(self.url, token=self.token, **kwargs)


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def run_controlplane(
    workdir: Path,
    *,
    mqtt_url: str,
    trust_kit: TrustKit,
    database_url: str | None = None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    port: int | None = None,
) -> Iterator[ControlPlaneProcess]:
    """A control plane subprocess on ``port`` (default: a free loopback one), up and healthy.

    It inherits the environment minus the control plane's own variables, plus
    ``EDGEFLEET_ADMIN_TOKEN=ADMIN_TOKEN``, plus ``env`` (which may override it).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data_dir = workdir / "controlplane-data"
    log = workdir / "controlplane.log"
    cmd = [
        sys.executable,
        "-m",
        "controlplane.cli",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--mqtt-url",
        mqtt_url,
        "--root-keys",
        str(trust_kit.root_pub),
        "--trust",
        str(trust_kit.trust_file),
        "--control-plane-key",
        str(trust_kit.cp_key),
        "--device-ca-key",
        str(trust_kit.device_ca_key),
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    cmd += extra_args or []
    own = (
        "DATABASE_URL",
        "MQTT_URL",
        "EDGEFLEET_MQTT_CLIENT_ID",
        "EDGEFLEET_HTTP_PORT",
        "EDGEFLEET_ROOT_KEYS",
        "EDGEFLEET_TRUST",
        "EDGEFLEET_CONTROL_PLANE_KEY",
        "EDGEFLEET_DEVICE_CA_KEY",
        "EDGEFLEET_DEVICE_CERT_TTL",
        "EDGEFLEET_COMMAND_TTL",
        "EDGEFLEET_ADMIN_TOKEN",
    )
    child_env = {k: v for k, v in os.environ.items() if k not in own}
    child_env["EDGEFLEET_ADMIN_TOKEN"] = ADMIN_TOKEN
    child_env |= env or {}
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_REPO), child_env.get("PYTHONPATH")])
    )
    with log.open("ab") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=child_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"control plane exited with {process.returncode}:\n{_log_tail(log)}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"control plane not healthy after {timeout}s:\n{_log_tail(log)}")
            time.sleep(0.1)
        yield ControlPlaneProcess(
            url=url,
            port=port,
            process=process,
            log=log,
            data_dir=data_dir,
            token=child_env["EDGEFLEET_ADMIN_TOKEN"],  # "": generated, printed in the log
        )
    finally:
        stop(process, timeout=10)


def reported_devices(cp: ControlPlaneProcess) -> list[dict[str, Any]]:
    """The devices that have sent a state report (enrolled ones that have not are left out)."""
    response = httpx.get(f"{cp.url}/api/v1/devices", headers=cp.headers, timeout=5)
    assert response.status_code == 200, response.text
    return [d for d in response.json() if d.get("last_report_at")]


@contextmanager
def serve_app(app: FastAPI, *, timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn in a thread on a free loopback port; its base URL.

    The lifespan (and so the MQTT bridge) runs as in production; stopped at exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


# -- bundles --------------------------------------------------------------------------


@dataclass
class SignedBundle:
    name: str
    version: str
    directory: Path
    files: list[FileRef]
    signature: FileRef

    def request(self) -> dict[str, Any]:
        """The body of ``POST /api/v1/models/{name}/versions``."""
        return {
            "version": self.version,
            "signature": self.signature.model_dump(),
            "files": [f.model_dump() for f in self.files],
        }


def signed_bundle(
    workdir: Path, *, name: str, version: str, private_key: Any = None, scale: float = 2.0
) -> SignedBundle:
    """Build a bundle of an affine ONNX model (``scale`` varies its bytes) and sign it.

    ``private_key``: a key, a key file (e.g. ``trust_kit.release_key``) or None (a new key).
    """
    if isinstance(private_key, Path):
        private_key = load_private_key(private_key)
    key = private_key if private_key is not None else generate_private_key()
    work = Path(tempfile.mkdtemp(prefix=f"bundle-{name}-{version}-", dir=workdir))
    source = affine_model(work / "src" / "model.onnx", scale=scale)
    directory = work / "bundle"
    build_bundle(source, directory, name=name, version=version)
    sig_path = sign_bundle(directory, key)
    files = [FileRef(path=f.path, sha256=f.sha256, size=f.size) for f in bundle_files(directory)]
    signature = FileRef(
        path=SIGNATURE_FILENAME, sha256=sha256_file(sig_path), size=sig_path.stat().st_size
    )
    return SignedBundle(name, version, directory, files, signature)


def upload_blobs(http: Any, bundle: SignedBundle) -> None:
    for ref in [*bundle.files, bundle.signature]:
        data = (bundle.directory / ref.path).read_bytes()
        response = http.put(f"/api/v1/blobs/sha256/{ref.sha256}", content=data)
        assert response.status_code in (200, 201), response.text


def upload_bundle(http: Any, bundle: SignedBundle) -> httpx.Response:
    """PUT every blob, then POST the version; the POST's response."""
    upload_blobs(http, bundle)
    response: httpx.Response = http.post(
        f"/api/v1/models/{bundle.name}/versions", json=bundle.request()
    )
    return response


# -- trust ----------------------------------------------------------------------------


def settings(
    workdir: Path, trust_kit: TrustKit, *, mqtt_url: str, **more: Any
) -> ControlPlaneSettings:
    """In-process settings with the kit's root key, trust document and control-plane key
    (and ``ADMIN_TOKEN`` as the bootstrap admin token)."""
    fields: dict[str, Any] = {
        "data_dir": workdir / "data",
        "mqtt_url": mqtt_url,
        "root_keys": [trust_kit.root_pub],
        "trust": trust_kit.trust_file,
        "control_plane_key": trust_kit.cp_key,
        "device_ca_key": trust_kit.device_ca_key,
        "admin_token": ADMIN_TOKEN,
    }
    return ControlPlaneSettings(**(fields | more))


def signer(engine: Engine, trust_kit: TrustKit, *, ttl_s: int = 7 * 86400) -> CommandSigner:
    """A command signer on ``engine`` (bootstrapping its trust chain from the kit)."""
    store = TrustStore.open(
        engine, [load_public_key(trust_kit.root_pub)], bootstrap=trust_kit.trust_file.read_bytes()
    )
    key = load_private_key(trust_kit.cp_key)
    return CommandSigner(key=key, trust=store, ttl=timedelta(seconds=ttl_s))


def trust_update(
    kit: TrustKit,
    version: int,
    *,
    roots: Sequence[Path] | None = None,
    releases: Sequence[Path] | None = None,
    control_planes: Sequence[Path] | None = None,
    device_cas: Sequence[Path] | None = None,
    revoked: Sequence[Path] = (),
    signers: Sequence[Path] | None = None,
    expires: datetime | None = None,
) -> bytes:
    """Trust document ``version`` (keys given as .pub paths; default: the kit's), signed
    by the kit's root unless ``signers`` (private key paths) says otherwise."""
    document = build_trust_document(
        version=version,
        expires=expires or datetime.now(UTC) + timedelta(days=30),
        roots=[load_public_key(p) for p in (roots or [kit.root_pub])],
        releases=[load_public_key(p) for p in (releases or [kit.release_pub])],
        control_planes=[load_public_key(p) for p in (control_planes or [kit.cp_pub])],
        device_cas=[load_public_key(p) for p in (device_cas or [kit.device_ca_pub])],
        revoked=[key_id(load_public_key(p)) for p in revoked],
        signers=[load_private_key(p) for p in (signers or [kit.root_key])],
    )
    return document.raw()


def open_command(raw: bytes, kit: TrustKit, *, cp_pub: Path | None = None) -> DesiredState:
    """Verify a published command with the control-plane key, as an agent does; its state."""
    public = load_public_key(cp_pub or kit.cp_pub)
    payload, _ = open_envelope(
        decode_envelope(raw), DESIRED_STATE_PAYLOAD_TYPE, {key_id(public): public}
    )
    return decode(DesiredState, payload)


# -- ingestion ------------------------------------------------------------------------


def state_report(device_id: str, fleet: str = "f", generation: int = 0, **fields: Any) -> bytes:
    """A StateReport payload as an agent publishes it (``fields``: active, last_error, …)."""
    return encode(
        StateReport(
            device_id=device_id,
            fleet=fleet,
            agent_version="1",
            status=fields.pop("status", DeviceStatus.IDLE),
            generation=generation,
            **fields,
        )
    )


#: Bundle digests of the two ``det`` versions the database-level tests register.
DET_V1_DIGEST, DET_V2_DIGEST = "aa" * 32, "bb" * 32


def register_version(
    engine: Engine, name: str = "det", version: str = "1.0.0", *, digest: str = "ab" * 32
) -> None:
    """Record a model version straight in the database (no signature check)."""
    with Session(engine) as session:
        crud.create_model_version(
            session,
            model=name,
            version=version,
            bundle_digest=digest,
            signature=FileRef(path="model.sig", sha256="cd" * 32, size=10),
            files=[FileRef(path="model.onnx", sha256="ef" * 32, size=20)],
            metadata={"name": name, "version": version},
            key_id="k",
        )
