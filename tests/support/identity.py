"""Enrolled devices for tests that play devices themselves: real enrollment (a one-time
token, a CSR, a certificate from the kit's device CA, a report key encrypted to the
device's key), then reports sealed as an agent seals them: MACed with the report key.

``DeviceKeys`` holds the keys and sequence numbers; how a device enrolls is given to it
(straight on the control plane's database, or through its HTTP API). ``seal`` enrolls a
device on first use, in the fleet its payload names (else ``f``). Attack tests use its
``key``/``stream``/``seq``/``sent_at`` arguments to forge, replay and post-date reports.

``SealingIngester`` wraps the real ``Ingester``: ``handle(topic, payload)`` seals the plain
message JSON and hands the sealed bytes to the real ``handle``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.commands import CommandSigner
from controlplane.identity.ca import DeviceCA
from controlplane.identity.enrollment import create_enrollment, enroll
from controlplane.ingest import Ingester
from controlplane.ingest_batch import Incoming, IngestStats
from model_store import dsse, generate_private_key, load_private_key
from model_store.device_certs import make_csr
from model_store.errors import SignatureError
from model_store.report_key import ReportKey, unwrap_report_key
from model_store.report_seal import REPORT_PAYLOAD_TYPE, seal_report
from protocol import ProtocolError, TopicKind, decode, decode_body, parse_device_topic
from tests.support.trust import TrustKit

#: Enrolls a device: (device id, fleet, CSR PEM) -> its wrapped report key.
Enroller = Callable[[str, str, str], str]


def device_ca(signer: CommandSigner, kit: TrustKit) -> DeviceCA:
    """The kit's device CA over ``signer``'s trust store (one day certificates)."""
    return DeviceCA(load_private_key(kit.device_ca_key), signer.trust, timedelta(days=1))


def database_enroller(engine: Engine, ca: DeviceCA) -> Enroller:
    """Enroll with the control plane's own functions on its database."""

    def enroll_in_db(device_id: str, fleet: str, csr: str) -> str:
        with Session(engine) as session:
            token, _ = create_enrollment(
                session, device_id=device_id, fleet=fleet, ttl=timedelta(hours=1), created_by="t"
            )
            return enroll(session, ca, token=token, csr_pem=csr).wrapped_report_key

    return enroll_in_db


def api_enroller(http: httpx.Client) -> Enroller:
    """Enroll through the HTTP API, as ``edgectl devices enroll`` + ``edge-agent enroll``."""

    def enroll_over_http(device_id: str, fleet: str, csr: str) -> str:
        path = f"/api/v1/devices/{quote(device_id, safe='')}/enrollment"
        created = http.post(path, json={"fleet": fleet})
        assert created.status_code == 201, created.text
        answer = http.post("/api/v1/enroll", json={"token": created.json()["token"], "csr": csr})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["report_key"])

    return enroll_over_http


class DeviceKeys:
    """Keys and sequence numbers of the devices a test plays."""

    def __init__(self, enroller: Enroller) -> None:
        self._enroller = enroller
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.report_keys: dict[str, ReportKey] = {}
        self.seq: dict[str, int] = {}

    def enroll(self, device_id: str, fleet: str = "f") -> ec.EllipticCurvePrivateKey:
        """Enroll ``device_id`` in ``fleet`` with a new key; the key."""
        key = generate_private_key()
        wrapped = self._enroller(device_id, fleet, make_csr(key, device_id).decode())
        self.report_keys[device_id] = unwrap_report_key(wrapped, key, device_id=device_id)
        self.keys[device_id], self.seq[device_id] = key, 0
        return key

    def seal(
        self,
        topic: str,
        payload: bytes,
        *,
        key: ec.EllipticCurvePrivateKey | ReportKey | None = None,
        stream: str | None = None,
        seq: int | None = None,
        sent_at: datetime | None = None,
    ) -> bytes:
        """``payload`` sealed for the topic's device (its next sequence number unless
        ``seq``; MACed with its own report key unless ``key``)."""
        device_id, kind = parse_device_topic(topic)
        if device_id not in self.keys:
            try:
                fleet = json.loads(payload).get("fleet", "f")
            except (ValueError, AttributeError):
                fleet = "f"
            self.enroll(device_id, fleet if isinstance(fleet, str) else "f")
        if seq is None:
            self.seq[device_id] += 1
            seq = self.seq[device_id]
        return seal_report(
            key or self.report_keys[device_id],
            device_id=device_id,
            stream=stream or kind.value,
            seq=seq,
            body=payload,
            sent_at=sent_at,
        )


class SealingIngester(DeviceKeys):
    """The real ``Ingester`` fed with reports sealed by enrolled devices' keys."""

    def __init__(self, ingester: Ingester, engine: Engine, ca: DeviceCA) -> None:
        super().__init__(database_enroller(engine, ca))
        self.ingester = ingester

    @property
    def stats(self) -> IngestStats:
        return self.ingester.stats

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        try:
            _, kind = parse_device_topic(topic)
        except ProtocolError:
            kind = TopicKind.DESIRED  # not a device report: handed over as it is
        if payload and kind is not TopicKind.DESIRED:
            payload = self.seal(topic, payload)
        self.ingester.handle(topic, payload, retained=retained)

    def handle_batch(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Seal each device report (as ``handle``) and hand them over as one batch."""
        self.ingester.handle_batch([Incoming(t, self.seal(t, p)) for t, p in items])


M = TypeVar("M", bound=BaseModel)


def report_of(message_type: type[M], payload: bytes) -> M:
    """The message in a device's report as a watcher on the broker sees it: a sealed one
    is opened WITHOUT checking its seal (the control plane's ingester checks), a plain one
    (an agent that never enrolled, with no control plane in the test) decoded as it is."""
    try:
        envelope = dsse.decode_envelope(payload)
    except SignatureError:
        return decode(message_type, payload)
    if envelope.payload_type != REPORT_PAYLOAD_TYPE:
        return decode(message_type, payload)
    body = json.loads(dsse.envelope_payload(envelope))["body"]
    return decode_body(message_type, body)


def sealing(
    ingester: Ingester, engine: Engine, signer: CommandSigner, kit: TrustKit
) -> SealingIngester:
    return SealingIngester(ingester, engine, device_ca(signer, kit))
