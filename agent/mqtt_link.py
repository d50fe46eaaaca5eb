"""The agent's MQTT link (paho-mqtt 2.x, MQTT 3.1.1).

paho owns reconnection (``connect_async`` + ``loop_start`` with a capped backoff of
``reconnect_delay_set(1, 30)``), so a broker that is down at start or goes away later
is retried forever and each failure is logged. On every (re)connect, inside
``on_connect``: subscribe to the device's own desired topic and to the trust topic (the
broker re-sends the retained deployment command and trust document), publish
``Availability(online=True)`` retained, and call ``on_connected`` so the agent reports
its full state, then flush the outbox. Both topics carry ``SignedEnvelope``s: the link
only parses them (malformed: counted and ignored); the deployment worker verifies them.

Publishes made while disconnected are never assumed delivered. Deployment events (QoS 1,
not retained) wait in a bounded in-memory outbox (``outbox_size``, default 1000; when
full the oldest is dropped, counted in ``outbox_dropped`` and logged) and are sent in
order on reconnect, after the full state report. Retained messages (state,
availability) are re-derived on reconnect instead, and heartbeats (QoS 0) are dropped.

Identity: client id = device id; username = the broker URL's username if it has one,
else the device id. The LWT is ``Availability(online=False)``, retained, QoS 1, on the
availability topic.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from agent.errors import LinkError
from protocol import (
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

logger = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
KEEPALIVE_S = 30
OUTBOX_SIZE = 1000


class MqttLink:
    """One device's connection to the broker."""

    def __init__(
        self,
        *,
        device_id: str,
        broker: BrokerAddress,
        on_desired: Callable[[SignedEnvelope], None],
        on_connected: Callable[[], None],
        on_trust: Callable[[bytes], None] | None = None,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        self.device_id = device_id
        self._broker = broker
        self._on_desired = on_desired
        self._on_trust = on_trust
        self._on_connected = on_connected
        self._desired_topic = device_topic(device_id, TopicKind.DESIRED)
        self._availability_topic = device_topic(device_id, TopicKind.AVAILABILITY)
        self._connected = threading.Event()
        self._count_lock = threading.Lock()
        self.malformed_messages = 0
        self.connections = 0
        # QoS 1 non-retained publishes held while disconnected; _flushed is True once
        # the outbox has been drained after the current connection came up
        self._outbox: deque[tuple[TopicKind, bytes]] = deque()
        self._outbox_size = outbox_size
        self._outbox_lock = threading.Lock()
        self._flushed = False
        self.outbox_dropped = 0
        try:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=device_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,  # persistent session: QoS 1 queued while away
            )
            client.username_pw_set(broker.username or device_id, broker.password)
            client.will_set(
                self._availability_topic,
                encode(Availability(device_id=device_id, online=False)),
                qos=1,
                retain=True,
            )
            if broker.tls:
                client.tls_set()
            client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        except (ValueError, OSError) as exc:
            raise LinkError(f"cannot set up MQTT client: {exc}") from exc
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client

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
        self._client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish offline (retained), disconnect cleanly and stop the network thread."""
        if self.connected:
            info = self.publish(
                TopicKind.AVAILABILITY,
                Availability(device_id=self.device_id, online=False),
                qos=1,
                retain=True,
            )
            if info is not None:
                try:
                    info.wait_for_publish(timeout)
                except (RuntimeError, ValueError) as exc:
                    logger.debug("%s: offline publish not confirmed: %s", self.device_id, exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        with self._outbox_lock:
            if self._outbox:
                logger.warning(
                    "%s: %d queued message(s) not sent before stopping",
                    self.device_id,
                    len(self._outbox),
                )
                self._outbox.clear()

    @property
    def outbox_length(self) -> int:
        with self._outbox_lock:
            return len(self._outbox)

    def publish(
        self, kind: TopicKind, message: BaseModel, *, qos: int, retain: bool = False
    ) -> mqtt.MQTTMessageInfo | None:
        """Hand a message to paho; None when it was not (yet) handed over.

        A QoS >= 1 message that is not retained goes to the outbox while the link is
        down (or its outbox is not drained yet), to be sent on reconnect. Anything else
        is dropped when not connected (logged at debug). A message paho accepts just as
        the connection drops stays in paho's own session queue and is resent by paho.
        """
        payload = encode(message)
        if qos > 0 and not retain:
            with self._outbox_lock:
                if not (self._flushed and self.connected):
                    self._enqueue(kind, payload)
                    return None
        if not self.connected:
            logger.debug("%s: not connected, %s not sent", self.device_id, kind)
            return None
        return self._send(kind, payload, qos=qos, retain=retain)

    def _enqueue(self, kind: TopicKind, payload: bytes) -> None:
        """Append to the outbox (lock held); drop the oldest message when it is full."""
        if len(self._outbox) >= self._outbox_size:
            dropped_kind, _ = self._outbox.popleft()
            self.outbox_dropped += 1
            logger.warning(
                "%s: outbox full (%d): dropped the oldest %s message (%d dropped so far)",
                self.device_id,
                self._outbox_size,
                dropped_kind,
                self.outbox_dropped,
            )
        self._outbox.append((kind, payload))

    def _flush_outbox(self) -> None:
        """Send the outbox in order (network thread, after the state report)."""
        sent = 0
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    self._flushed = True
                    break
                if not self.connected:  # lost again: keep the rest for the next connect
                    return
                kind, payload = self._outbox.popleft()
            self._send(kind, payload, qos=1, retain=False)
            sent += 1
        if sent:
            logger.info("%s: sent %d message(s) queued while offline", self.device_id, sent)

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
            return
        self.connections += 1
        logger.info("%s: connected to %s", self.device_id, self._broker.masked())
        self._connected.set()
        client.subscribe(self._desired_topic, qos=1)
        if self._on_trust is not None:
            client.subscribe(TRUST_TOPIC, qos=1)
        self.publish(
            TopicKind.AVAILABILITY,
            Availability(device_id=self.device_id, online=True),
            qos=1,
            retain=True,
        )
        self._call(self._on_connected)
        self._flush_outbox()

    def _handle_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        logger.warning(
            "%s: cannot reach broker %s; retrying (backoff up to %ss)",
            self.device_id,
            self._broker.masked(),
            RECONNECT_MAX_S,
        )

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        with self._outbox_lock:
            self._connected.clear()
            self._flushed = False
        if was_connected and reason_code.is_failure:
            logger.warning(
                "%s: lost broker connection (%s); reconnecting", self.device_id, reason_code
            )

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
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

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # never let an agent bug kill paho's network thread
            logger.exception("%s: MQTT callback %s failed", self.device_id, callback)
