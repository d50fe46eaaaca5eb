"""The control plane's MQTT link: publishes desired states, ingests device reports.

paho-mqtt 2.x (callback API v2), MQTT 3.1.1 so both Mosquitto and the embedded amqtt
broker work; MQTT 5 when replicas share reports (``share_group``: each subscribes to
``$share/<group>/edgefleet/v1/devices/+/+``, and the broker hands each report to one of
them). Our own retained topics (commands, trust) are never shared: every replica
watches them.

A replica in a share group starts a clean session, with no expiry: Mosquitto goes on
handing a share of the group's reports to the persistent session of a replica that is
away, where they wait until it returns (seen: a killed replica's share of state reports
never reached the other one). Nothing is lost without a persistent session: devices send
events and heartbeats again until a replica acknowledges them (``report_acks``), and
state reports and availability are retained, so a replica that (re)connects gets each
device's latest. A state report in flight to a replica as it dies reaches the others
only with the device's next one (a state change or a reconnect).

paho's network thread owns (re)connection; a broker that is down at start-up is retried
the same way while the HTTP API serves. Each wait is drawn by
``protocol.reconnect.Backoff`` (full jitter, at most ``RECONNECT_CAP_S`` = 3 s, the
agents' policy too) in ``on_connect_fail`` / ``on_disconnect`` and handed to paho, so
the bridge is back within 3 s of the broker and replicas do not reconnect in step.

Discipline:
* subscribe inside ``on_connect`` so the subscription returns after every reconnect;
* the paho thread only enqueues: the ingest queue is bounded in messages and in bytes
  (``INGEST_QUEUE_MESSAGES``, ``INGEST_QUEUE_BYTES``); a report waits at most
  ``OFFER_WAIT_S`` for room (reading stops meanwhile, so the broker holds the rest: back
  pressure), then it is dropped and counted (``dropped``; one warning per episode), and
  one over ``MAX_REPORT_BYTES`` is never queued (the ingester counts it as malformed);
* one worker thread does all database work;
* on every (re)connect the worker republishes the latest trust document and each
  device's signed command from the database, so a publish made while disconnected is
  never lost;
* after committing reports the worker acknowledges them to their devices, batched
  (``controlplane.report_acks``): an agent's spool forgets a report only then;
* every ``refresh_interval`` the worker re-signs commands that near their expiry (or
  whose trust version another replica changed) and publishes those.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from controlplane.commands import CommandSigner, publish_commands
from controlplane.ingest import Ingester
from controlplane.ingest_batch import BATCH, Incoming, kind_of
from controlplane.ingest_queue import IngestQueue
from controlplane.mqtt_sessions import CLIENT_ID_HINT, SessionWatch
from controlplane.mqtt_socket import ReadAheadClient
from controlplane.publisher import SignedCommand
from controlplane.report_acks import AckSender
from controlplane.retained_watch import RetainedWatch
from protocol import (
    DESIRED_STATE_FILTER,
    DEVICE_REPORTS_FILTER,
    MAX_PACKET_BYTES,
    MAX_REPORT_BYTES,
    TRUST_TOPIC,
    BrokerAddress,
    TopicKind,
    device_topic,
)
from protocol.reconnect import RECONNECT_BASE_S, RECONNECT_CAP_S, Backoff

logger = logging.getLogger(__name__)

#: Reports waiting for the ingest worker: at most this many, weighing at most this much.
INGEST_QUEUE_MESSAGES: Final = 10_000
INGEST_QUEUE_BYTES: Final = 32 * 1024 * 1024
#: How long the network thread waits for room in a full queue before it drops a report.
#: It reads nothing meanwhile: the broker holds the reports (QoS 1), and what is read is
#: applied instead of thrown away. Short against the keepalive, which that thread sends;
#: once one report was dropped, the next ones do not wait until the queue has room again.
OFFER_WAIT_S: Final = 0.2

_REPUBLISH: Final = "republish"
_REFRESH: Final = "refresh"
_STOP: Final = "stop"


#: A device report waiting for the worker.
_Report = Incoming


@dataclass(frozen=True)
class _Oversized:
    """A report over ``MAX_REPORT_BYTES``: only its topic and size are kept."""

    topic: str
    size: int


@dataclass(frozen=True)
class _Retained:
    """A message on one of our own retained topics (a command, the trust document)."""

    topic: str
    payload: bytes


_Work = _Report | _Oversized | _Retained | str


@dataclass(frozen=True)
class TlsFiles:
    """The CA to check the broker against, and our client certificate and key."""

    ca: Path | None
    cert: Path | None
    key: Path | None


class MqttBridge:
    """Implements :class:`~controlplane.publisher.DesiredStatePublisher` over paho."""

    def __init__(
        self,
        target: BrokerAddress,
        engine: Engine,
        signer: CommandSigner,
        *,
        client_id: str,
        keepalive: int = 30,
        reconnect_base_s: float = RECONNECT_BASE_S,
        reconnect_cap_s: float = RECONNECT_CAP_S,
        queue_size: int = INGEST_QUEUE_MESSAGES,
        queue_bytes: int = INGEST_QUEUE_BYTES,
        refresh_interval: float | None = None,
        tls_files: TlsFiles | None = None,
        share_group: str | None = None,
    ) -> None:
        self._target = target
        self.share_group = share_group
        self._reports_filter = (
            f"$share/{share_group}/{DEVICE_REPORTS_FILTER}"
            if share_group
            else DEVICE_REPORTS_FILTER
        )
        self._engine = engine
        self._signer = signer
        #: Half a command's lifetime is the re-signing margin; check twice as often.
        ttl_s = signer.ttl.total_seconds()
        self._refresh_interval = refresh_interval or max(1.0, min(ttl_s / 4, 3600.0))
        self._keepalive = keepalive
        self._queue: IngestQueue[_Work] = IngestQueue(max_items=queue_size, max_bytes=queue_bytes)
        self._connected = threading.Event()
        self._stopping = False
        self._backoff = Backoff(reconnect_base_s, reconnect_cap_s)
        self._client_id = client_id
        self._sessions = SessionWatch()
        #: reports dropped because the ingest queue was full (``dropped_kinds``: by kind)
        self.dropped = 0
        self.dropped_kinds: collections.Counter[str] = collections.Counter()
        self._dropping = False  # in a full-queue episode (warned once)
        self.ingester = Ingester(engine, self, signer)
        self.acks = AckSender(self.ingester.auth.report_key, self._publish_ack)
        self.retained = RetainedWatch(engine, signer, self)
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        if share_group:  # MQTT 5, a clean session (see the module text)
            client = ReadAheadClient(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
        else:
            client = ReadAheadClient(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,  # persistent session: QoS 1 queued while away
            )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            if tls_files is None:
                client.tls_set()  # the system's CA store, no client certificate
            else:
                client.tls_set(
                    ca_certs=str(tls_files.ca) if tls_files.ca else None,
                    certfile=str(tls_files.cert) if tls_files.cert else None,
                    keyfile=str(tls_files.key) if tls_files.key else None,
                )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self._client = client

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> tuple[int, int]:
        """Reports waiting in the ingest queue: how many, and their bytes."""
        return len(self._queue), self._queue.bytes

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Start connecting in the background; returns at once, even if the broker is down."""
        self._worker.start()
        logger.info(
            "MQTT bridge connecting to %s:%s as %r%s",
            self._target.host,
            self._target.port,
            self._client_id,
            f", sharing reports in group {self.share_group!r} (MQTT 5)" if self.share_group else "",
        )
        if self.share_group:
            self._client.connect_async(
                self._target.host, self._target.port, self._keepalive, clean_start=True
            )
        else:
            self._client.connect_async(self._target.host, self._target.port, self._keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._enqueue(_STOP, force=True)
        self._worker.join(timeout=10)
        logger.info("MQTT bridge stopped")

    # -- publishing -----------------------------------------------------------------

    def publish_desired(self, command: SignedCommand) -> bool:
        topic = device_topic(command.device_id, TopicKind.DESIRED)
        what = f"command of {command.device_id} (generation {command.generation})"
        if self._publish(topic, command.raw, what):
            logger.debug("published %s", what)
            return True
        return False

    def publish_trust(self, raw: bytes) -> bool:
        return self._publish(TRUST_TOPIC, raw, "trust document")

    def clear_desired(self, device_id: str) -> bool:
        topic = device_topic(device_id, TopicKind.DESIRED)
        return self._publish(topic, b"", f"clearing the command of {device_id}")

    def _publish_ack(self, topic: str, payload: bytes) -> bool:
        """An acknowledgement of stored reports: QoS 1, not retained, never queued."""
        if not self._connected.is_set():
            return False
        return self._client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def _publish(self, topic: str, payload: bytes, what: str) -> bool:
        if not self._connected.is_set():
            logger.info("broker unreachable: %s will be sent on reconnect", what)
            return False
        self.retained.sent(topic, payload)  # its echo comes back: nothing to check
        info = self._client.publish(topic, payload, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            logger.warning(
                "%s not sent now (%s); it is republished on reconnect",
                what,
                mqtt.error_string(info.rc),
            )
            return False
        return True

    # -- paho callbacks (network thread: keep them cheap) ---------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("MQTT broker refused the connection: %s", reason)
            return
        logger.info("MQTT bridge connected to %s:%s", self._target.host, self._target.port)
        self._backoff.reset()
        self._sessions.connected()
        client.subscribe(self._reports_filter, qos=1)
        client.subscribe(DESIRED_STATE_FILTER, qos=1)  # our retained topics: watched
        client.subscribe(TRUST_TOPIC, qos=1)
        self._connected.set()
        self._enqueue(_REPUBLISH, force=True)

    def _on_disconnect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._connected.clear()
        if self._stopping:
            return
        wait = self._backoff.schedule(client)  # before paho's reconnect wait
        logger.warning("MQTT connection lost (%s); reconnecting in %.1fs", reason, wait)
        if (cause := self._sessions.lost(reason.value)) is not None:
            logger.warning("%s: " + CLIENT_ID_HINT, cause, self._client_id)

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        wait = self._backoff.failed(client)  # paho sleeps this long before the next attempt
        log = logger.warning if self._backoff.loud else logger.info
        log(
            "cannot reach MQTT broker at %s:%s (attempt %s); retrying in %.1fs (jittered, "
            "at most %ss)",
            self._target.host,
            self._target.port,
            self._backoff.failures,
            wait,
            self._backoff.cap,
        )

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        size = len(msg.payload)
        if RetainedWatch.watches(msg.topic):
            if self.retained.echo(msg.topic, msg.payload):
                return  # what we published, back from the broker
            if size <= MAX_PACKET_BYTES:
                self._enqueue(_Retained(msg.topic, bytes(msg.payload)), size)
            return
        if size > MAX_REPORT_BYTES:
            self._enqueue(_Oversized(msg.topic, size))
        else:
            report = _Report(msg.topic, bytes(msg.payload), bool(msg.retain))
            # no wait once dropping: a stalled worker must not hold this thread (and the
            # PUBACKs and pings it writes) 0.2 s per message
            self._enqueue(report, size, wait=0.0 if self._dropping else OFFER_WAIT_S)

    # -- worker ---------------------------------------------------------------------

    def _enqueue(
        self, work: _Work, size: int = 0, *, force: bool = False, wait: float = 0.0
    ) -> None:
        """Queue ``work``, waiting up to ``wait`` s for room; drop and count it if the
        queue is still full."""
        if self._queue.offer(work, size, force=force, wait=wait):
            self._dropping = False
            return
        self.dropped += 1
        self.dropped_kinds[kind_of(getattr(work, "topic", ""))] += 1
        if not self._dropping:
            self._dropping = True
            logger.warning(
                "ingest queue full (%s messages, %s bytes): dropping reports until it "
                "drains (%s dropped so far)",
                len(self._queue),
                self._queue.bytes,
                self.dropped,
            )

    def _work(self) -> None:
        next_refresh = time.monotonic() + self._refresh_interval
        while True:
            try:
                work = self._queue.get(timeout=max(0.0, next_refresh - time.monotonic()))
            except queue.Empty:
                work = _REFRESH
            if work == _STOP:
                return
            if work == _REFRESH:
                next_refresh = time.monotonic() + self._refresh_interval
            try:
                self._do(work)
            except Exception as exc:  # the worker must outlive anything one item does
                logger.error("ingest worker: %s failed: %s", _what(work), exc.__class__.__name__)
                logger.debug("ingest worker failure", exc_info=True)

    def _do(self, work: _Work) -> None:
        if work == _REFRESH:
            self._publish_commands(changed_only=True)
        elif work == _REPUBLISH:
            self._republish_all()
        elif isinstance(work, Incoming):
            # with what else is queued: reports are applied in batches
            more = self._queue.take_while(_is_report, BATCH - 1)
            self.ingester.handle_batch([work, *(w for w in more if isinstance(w, Incoming))])
            acks = self.ingester.acks
            if acks and (not len(self._queue) or acks.due(time.monotonic())):
                self.acks.flush(acks)  # batched: once the queue is drained
        elif isinstance(work, _Oversized):
            self.ingester.oversized(work.topic, work.size)
        elif isinstance(work, _Retained):
            self.retained.check(work.topic, work.payload)

    def _republish_all(self) -> None:
        try:
            with Session(self._engine) as session:
                trust = self._signer.trust.current(session)
        except SQLAlchemyError as exc:
            logger.error("cannot read the trust chain: database error %s", exc.__class__.__name__)
            return
        self.publish_trust(trust.raw())
        sent = self._publish_commands(changed_only=False)
        logger.info(
            "republished trust document v%s and %s command(s) after connecting",
            trust.version,
            sent,
        )

    def _publish_commands(self, *, changed_only: bool) -> int:
        if not self._connected.is_set():
            return 0
        try:
            with Session(self._engine) as session:
                return publish_commands(session, self._signer, self, changed_only=changed_only)
        except SQLAlchemyError as exc:
            logger.error("cannot publish commands: database error %s", exc.__class__.__name__)
            return 0


def _what(work: _Work) -> str:
    return (
        work
        if isinstance(work, str)
        else f"{type(work).__name__.strip('_').lower()} on {work.topic}"
    )


def _is_report(work: object) -> bool:
    return isinstance(work, Incoming)
