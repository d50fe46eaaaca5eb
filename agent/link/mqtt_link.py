"""The agent's MQTT link (paho-mqtt 2.x, MQTT 3.1.1).

paho owns reconnection (``connect_async`` + ``loop_start``), so a broker that is down at
start or goes away later is retried forever; each wait is drawn by
``protocol.reconnect.Backoff`` (full jitter, at most ``RECONNECT_CAP_S`` = 3 s) in
``on_connect_fail`` / ``on_disconnect`` and handed to paho, so a device is back within
3 s of the broker and a fleet does not reconnect in step. Failures are logged with
their reason (the first of a streak at warning level, then every tenth). A light
simulated device's link is driven by a shared ``agent.link.network_loop.NetworkLoop``
instead (``network=``): no thread of its own, the same callbacks, each attempt made and
the next one scheduled by the loop with the same backoff. On every (re)connect, inside
``on_connect``: subscribe to the device's own desired topic and to the trust topic (the
broker re-sends the retained deployment command and trust document), publish
``Availability(online=True)`` retained, and call ``on_connected`` so the agent reports
its full state; only then does the spool drain. Both topics carry ``SignedEnvelope``s:
the link only parses them (malformed: counted and ignored); the deployment worker
verifies them.

Nothing depends on being connected: every QoS >= 1 message that is not retained (events,
heartbeats) goes to the on-disk spool (``agent.link.spool``: bounded, oldest dropped and
counted) and is sent from there, in order, by ``agent.link.spool_sender``, connected or not.
With a report key, a report leaves the spool only once the control plane acknowledged
it (issue 13.4): the link subscribes to its acks topic (``protocol.topics.ack_topic``),
checks each ack's MAC with the report key (``model_store.report_ack``; a forged or
malformed one is counted in ``malformed_messages`` and ignored) and hands it to the
sender. Without one (not enrolled, or sealing with the ECDSA key only), the broker's
PUBACK is the end of it. Retained messages (state,
availability) are not spooled: re-derived on every reconnect, dropped while offline.
A report over ``protocol.MAX_REPORT_BYTES`` is never sent (the control plane would drop
it unread): it is dropped here with a warning.

Identity: client id = device id; username = the broker URL's username if it has one,
else the device id. The LWT is ``Availability(online=False)``, retained, QoS 1, on the
availability topic.

Every report is sealed with the device's enrolled key when it has one (``sealer``):
sealing and spooling happen under one lock, so each stream's sequence numbers reach the
spool, and so the broker, in order. The LWT is sealed anew before every connection
attempt (paho's ``on_pre_connect``), on its own ``will`` stream.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from agent.errors import LinkError, SpoolError
from agent.identity.model import Identity
from agent.identity.sealer import ReportSealer
from agent.link.spool import Spool, SpoolEntry
from agent.link.spool_sender import SKIP, WINDOW, SpoolSender
from model_store.errors import SignatureError
from model_store.report_ack import open_ack
from model_store.report_seal import WILL_STREAM
from protocol import (
    MAX_REPORT_BYTES,
    TRUST_TOPIC,
    Availability,
    BrokerAddress,
    ProtocolError,
    SignedEnvelope,
    TopicKind,
    decode,
    device_topic,
    encode,
)
from protocol.reconnect import RECONNECT_CAP_S, Backoff
from protocol.topics import ack_topic

if TYPE_CHECKING:  # a real agent never loads it (nor asyncio): only the light simulator does
    from agent.link.network_loop import NetworkLoop

logger = logging.getLogger(__name__)

KEEPALIVE_S = 30
SPOOL_MAX_ENTRIES = 10_000


class MqttLink:
    """One device's connection to the broker."""

    def __init__(
        self,
        *,
        device_id: str,
        broker: BrokerAddress,
        on_desired: Callable[[SignedEnvelope], None],
        on_connected: Callable[[], None],
        spool_path: Path,
        on_trust: Callable[[bytes], None] | None = None,
        spool_max_entries: int = SPOOL_MAX_ENTRIES,
        sealer: ReportSealer | None = None,
        identity: Identity | None = None,
        network: NetworkLoop | None = None,
    ) -> None:
        """``network``: drive the connection from that shared loop (a light simulated
        device) instead of a network thread of its own (``loop_start``)."""
        self.device_id = device_id
        self._network = network
        self._stopping = False
        self._step_due = False
        self._sealer = sealer
        self._publish_lock = threading.Lock()
        self._broker = broker
        self._on_desired = on_desired
        self._on_trust = on_trust
        self._on_connected = on_connected
        self._desired_topic = device_topic(device_id, TopicKind.DESIRED)
        self._availability_topic = device_topic(device_id, TopicKind.AVAILABILITY)
        self._ack_topic = ack_topic(device_id)
        self._connected = threading.Event()
        #: a CONNACK refusal was logged: its disconnect needs no second line
        self._refusal_logged = False
        self._count_lock = threading.Lock()
        self.malformed_messages = 0
        self.connections = 0
        self._backoff = Backoff()
        self._spool = Spool(spool_path, spool_max_entries)  # SpoolError: one line
        self._sender = SpoolSender(
            device_id,
            self._spool,
            self._send_entry,
            wake=self._wake_sender if network is not None else None,
        )
        try:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=device_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,  # persistent session: QoS 1 queued while away
            )
            client.username_pw_set(broker.username or device_id, broker.password)
            self._set_will(client)
            self._tls: ssl.SSLContext | None = None
            self._identity = identity
            if broker.tls and identity is not None:
                # mutual TLS: the broker's certificate must chain to the device CA, and
                # ours names this device (the broker makes it our username and client id)
                self._tls = ssl.create_default_context(cafile=str(identity.ca_path))
                self._tls.load_cert_chain(str(identity.cert_path), str(identity.key_path))
                client.tls_set_context(self._tls)
            elif broker.tls:
                client.tls_set()
            # room for the spool window plus the retained state/availability reports
            client.max_inflight_messages_set(WINDOW + 10)
        except (ValueError, OSError, ssl.SSLError) as exc:
            self._spool.close()
            raise LinkError(f"cannot set up MQTT client: {exc}") from exc
        client.on_pre_connect = self._handle_pre_connect
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_publish = self._handle_publish
        self._client = client

    def reload_certificate(self) -> None:
        """Use the renewed certificate from the next connection on (the one open now
        stays: the broker checks a certificate at the handshake)."""
        if self._tls is not None and self._identity is not None:
            cert, key = self._identity.cert_path, self._identity.key_path
            try:
                self._tls.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as exc:
                logger.warning("%s: renewed certificate not loaded: %s", self.device_id, exc)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        logger.info("%s: connecting to %s", self.device_id, self._broker.masked())
        try:
            self._client.connect_async(self._broker.host, self._broker.port, KEEPALIVE_S)
        except (ValueError, OSError) as exc:
            raise LinkError(f"cannot connect to {self._broker.masked()}: {exc}") from exc
        self._sender.start()
        if self._network is not None:
            self._network.call_soon(self._network.attach, self._client, self._sender.step)
            self._network.call_soon(self._connect)
        else:
            self._client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Await outstanding PUBACKs, publish offline, disconnect; the spool keeps the rest.
        Driven by a ``NetworkLoop``: call from another thread than the loop's."""
        self._stopping = True
        self._sender.stop(timeout)
        if self.connected:
            offline = Availability(device_id=self.device_id, online=False)
            publish = partial(self.publish, TopicKind.AVAILABILITY, offline, qos=1, retain=True)
            info = self._network.call(publish) if self._network is not None else publish()
            if info is not None:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError) as exc:
                    logger.debug("%s: offline publish not confirmed: %s", self.device_id, exc)
        if self._network is not None:
            self._network.call(self._client.disconnect)
            self._network.call(self._network.detach, self._client)
        else:
            self._client.disconnect()
            self._client.loop_stop()
        self._connected.clear()
        if pending := self._spool.pending:
            logger.info(
                "%s: %d spooled message(s) kept for the next start", self.device_id, pending
            )
        self._spool.close()

    def spool_figures(self) -> dict[str, int]:
        """What a heartbeat says of the spool (``Heartbeat.spool_*``)."""
        return {
            "spool_pending": self.outbox_length,
            "spool_dropped": self.outbox_dropped,
            "spool_acked": self.outbox_acked,
            "spool_lost": self.outbox_lost,
        }

    @property
    def outbox_length(self) -> int:
        """Spooled messages the broker has not acknowledged yet (in flight included)."""
        return self._spool.pending

    @property
    def outbox_dropped(self) -> int:
        """Spooled messages dropped unsent because the spool was full (persisted)."""
        return self._spool.dropped

    @property
    def outbox_acked(self) -> int:
        """Spooled reports the control plane acknowledged as stored (persisted)."""
        return self._spool.acked

    @property
    def outbox_lost(self) -> int:
        """Spooled reports the control plane acknowledged as lost (persisted)."""
        return self._spool.lost

    def publish(
        self, kind: TopicKind, message: BaseModel, *, qos: int, retain: bool = False
    ) -> mqtt.MQTTMessageInfo | None:
        """Send a message; None when it was not handed to paho now. QoS >= 1 and not
        retained: appended to the spool, sent from there (None). Anything else is dropped
        while not connected (logged at debug). Driven by a ``NetworkLoop`` and called
        from another thread: handed to the loop (None)."""
        network = self._network
        if network is not None and not network.in_loop():
            network.call_soon(partial(self.publish, kind, message, qos=qos, retain=retain))
            return None
        if qos > 0 and not retain:
            with self._publish_lock:  # sequence numbers reach the spool in order
                sealed = self._seal_numbered(str(kind), message)
                if sealed is None:
                    return None
                report_seq, payload = sealed
                try:
                    self._spool.append(str(kind), payload, report_seq)
                except SpoolError as exc:  # disk trouble: best effort, never fail the caller
                    logger.warning("%s: %s; %s sent unspooled", self.device_id, exc, kind)
                    return (
                        self._send(kind, payload, qos=qos, retain=False) if self.connected else None
                    )
            self._sender.notify()
            return None
        if not self.connected:
            logger.debug("%s: not connected, %s not sent", self.device_id, kind)
            return None
        wire = self._seal(str(kind), message)
        return None if wire is None else self._send(kind, wire, qos=qos, retain=retain)

    def _seal(self, stream: str, message: BaseModel) -> bytes | None:
        sealed = self._seal_numbered(stream, message)
        return None if sealed is None else sealed[1]

    def _seal_numbered(self, stream: str, message: BaseModel) -> tuple[int | None, bytes] | None:
        """The wire bytes of ``message`` (sealed if the device is enrolled) and, if the
        control plane will acknowledge it (MACed with a report key), its sequence number;
        None, with a warning, if they exceed what the control plane reads."""
        body = encode(message)
        seq: int | None = None
        if self._sealer is None:
            payload = body
        else:
            numbered, payload = self._sealer.seal_numbered(stream, body)
            seq = numbered if self._sealer.report_key is not None else None
        if len(payload) > MAX_REPORT_BYTES:
            logger.warning(
                "%s: %s of %s bytes not sent: the control plane reads at most %s",
                self.device_id,
                stream,
                len(payload),
                MAX_REPORT_BYTES,
            )
            return None
        return seq, payload

    def _set_will(self, client: mqtt.Client) -> None:
        offline = Availability(device_id=self.device_id, online=False)
        will = self._seal(WILL_STREAM, offline)
        assert will is not None  # an availability notice is a few hundred bytes
        client.will_set(self._availability_topic, will, qos=1, retain=True)

    def _send_entry(self, entry: SpoolEntry) -> int | None:
        """The spool sender's hand-over: paho's mid, None (retry later) or SKIP."""
        try:
            topic = device_topic(self.device_id, TopicKind(entry.kind))
            info = self._client.publish(topic, entry.payload, qos=1)
        except ValueError as exc:  # unknown kind, payload too large: never deliverable
            logger.warning("%s: spooled message %d dropped: %s", self.device_id, entry.seq, exc)
            return SKIP
        except (RuntimeError, OSError) as exc:
            logger.warning("%s: publish of spooled message failed: %s", self.device_id, exc)
            return None
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return info.mid  # NO_CONN: the link just dropped; paho keeps it and resends it
        logger.debug("%s: spooled message %d: %s", self.device_id, entry.seq, info.rc)
        return None

    def _send(
        self, kind: TopicKind, payload: bytes, *, qos: int, retain: bool
    ) -> mqtt.MQTTMessageInfo | None:
        try:
            info = self._client.publish(
                device_topic(self.device_id, kind), payload, qos=qos, retain=retain
            )
        except (ValueError, RuntimeError, OSError) as exc:
            logger.warning("%s: publish to %s failed: %s", self.device_id, kind, exc)
            return None
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            logger.debug("%s: publish to %s: %s", self.device_id, kind, mqtt.error_string(info.rc))
            return None
        return info

    # -- paho callbacks (network thread) -------------------------------------------------

    def _handle_pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        if self._sealer is not None:
            self._set_will(client)  # a fresh sequence number: an old will is a replay

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.warning("%s: broker refused connection: %s", self.device_id, reason_code)
            self._refusal_logged = True
            return
        self.connections += 1
        self._backoff.reset()
        logger.info("%s: connected to %s", self.device_id, self._broker.masked())
        self._connected.set()
        client.subscribe(self._desired_topic, qos=1)
        if self._on_trust is not None:
            client.subscribe(TRUST_TOPIC, qos=1)
        if self._sealer is not None:
            client.subscribe(self._ack_topic, qos=1)
        self.publish(
            TopicKind.AVAILABILITY,
            Availability(device_id=self.device_id, online=True),
            qos=1,
            retain=True,
        )
        self._call(self._on_connected)
        self._sender.connected()  # after the state report: the spool drains now

    def _handle_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho calls this while it handles the OSError its attempt raised: say which
        self._connect_failed(sys.exc_info()[1])

    def _connect_failed(self, exc: BaseException | None) -> float:
        """Log a failed attempt (why, when the next one is); the wait before it."""
        wait = self._backoff.failed(self._client)  # paho sleeps this long (threaded)
        log = logger.warning if self._backoff.loud else logger.info
        log(
            "%s: cannot reach broker %s (attempt %d): %s; retrying in %.1fs "
            "(jittered, at most %ss)",
            self.device_id,
            self._broker.masked(),
            self._backoff.failures,
            f"{type(exc).__name__}: {exc}" if exc is not None else "no reason given",
            wait,
            RECONNECT_CAP_S,
        )
        return wait

    # -- driven by a NetworkLoop (on its thread) ------------------------------------------

    def _connect(self) -> None:
        """One connection attempt; the next one is scheduled if it fails."""
        if self._stopping or self._network is None:
            return
        try:
            self._client.reconnect()
        except OSError as exc:  # refused, unreachable, TLS handshake failed...
            self._network.call_later(self._connect_failed(exc), self._connect)

    def _wake_sender(self) -> None:
        """The spool sender has work: one ``step`` on the loop (coalesced)."""
        if not self._step_due and self._network is not None:
            self._step_due = True
            self._network.call_soon(self._step_sender)

    def _step_sender(self) -> None:
        self._step_due = False
        self._sender.step()

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        if not was_connected and not self._refusal_logged and not self._stopping:
            # closed before any CONNACK: under TLS 1.3 a broker that refuses the client's
            # certificate (revoked, expired, another CA) says so only by closing
            wait = self._connect_failed(
                ConnectionError(
                    f"the broker closed the connection before accepting it ({reason_code}): "
                    "a refused client certificate (revoked, expired, another CA) looks so"
                )
            )
        else:
            wait = self._backoff.schedule(client)  # before paho's reconnect wait
        self._refusal_logged = False
        if self._network is not None and not self._stopping:
            self._network.call_later(wait, self._connect)
        self._connected.clear()
        self._sender.disconnected()
        if was_connected and reason_code.is_failure:
            logger.warning(
                "%s: lost broker connection (%s); reconnecting", self.device_id, reason_code
            )

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        self._sender.acked(mid)  # PUBACK: only now may the spool forget the entry

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._ack_topic:
            return self._handle_ack(bytes(msg.payload))
        trust = msg.topic == TRUST_TOPIC and self._on_trust is not None
        if not trust and msg.topic != self._desired_topic:
            return
        what = "trust document" if trust else "deployment command"
        if not msg.payload:
            logger.info("%s: %s cleared (empty retained message)", self.device_id, what)
            return
        try:
            envelope = decode(SignedEnvelope, msg.payload)
        except ProtocolError as exc:
            with self._count_lock:
                self.malformed_messages += 1
            logger.warning("%s: ignored malformed %s: %s", self.device_id, what, exc)
            return
        if trust and self._on_trust is not None:
            return self._call(self._on_trust, bytes(msg.payload))
        self._call(self._on_desired, envelope)

    def _handle_ack(self, payload: bytes) -> None:
        """The control plane's ack of stored reports: believed only if MACed with our
        report key (anyone may publish on an open broker)."""
        key = self._sealer.report_key if self._sealer is not None else None
        if key is None or not payload:
            return
        try:
            ack = open_ack(payload, key, device_id=self.device_id)
        except SignatureError as exc:
            with self._count_lock:
                self.malformed_messages += 1
            logger.warning("%s: ignored report acknowledgement: %s", self.device_id, exc)
            return
        self._sender.settled(list(ack.seqs(ack.stored)), list(ack.seqs(ack.lost)))

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # never let an agent bug kill paho's network thread
            logger.exception("%s: MQTT callback %s failed", self.device_id, callback)
