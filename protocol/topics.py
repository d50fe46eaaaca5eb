"""MQTT topic builders and parsers.

Layout (all under ``edgefleet/v1``)::

    edgefleet/v1/devices/{device_id}/desired       control plane -> agent, retained, QoS 1
    edgefleet/v1/devices/{device_id}/state         agent -> control plane, retained, QoS 1
    edgefleet/v1/devices/{device_id}/events        agent -> control plane, QoS 1
    edgefleet/v1/devices/{device_id}/heartbeat     agent -> control plane, QoS 0
    edgefleet/v1/devices/{device_id}/availability  agent (and its LWT), retained, QoS 1
    edgefleet/v1/trust                             control plane -> all, retained, QoS 1:
                                                   the latest signed trust document
    edgefleet/v1/acks/{device_id}                  control plane -> agent, QoS 1: which of
                                                   the device's reports are stored
                                                   (``model_store.report_ack``)

Acks live outside ``devices/`` so the control plane's report subscription
(``DEVICE_REPORTS_FILTER``) never receives its own acks, and a device's ACL can grant
it read access to its acks alone.

The desired state travels as a ``SignedEnvelope`` holding a ``DesiredState``.

Only features that MQTT 3.1.1 and 5 share are used (retain, QoS 1, LWT, persistent
sessions), so the embedded amqtt broker and Mosquitto both work.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum

from protocol.errors import ProtocolError

TOPIC_ROOT = "edgefleet/v1"
_DEVICES = f"{TOPIC_ROOT}/devices"
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TopicKind(StrEnum):
    DESIRED = "desired"
    STATE = "state"
    EVENTS = "events"
    HEARTBEAT = "heartbeat"
    AVAILABILITY = "availability"


#: The latest root-signed trust document (a SignedEnvelope), retained.
TRUST_TOPIC = f"{TOPIC_ROOT}/trust"
#: Where the control plane acknowledges the reports it stored (``ack_topic``).
ACKS_ROOT = f"{TOPIC_ROOT}/acks"
#: What the control plane subscribes to: every device's reports.
DEVICE_REPORTS_FILTER = f"{_DEVICES}/+/+"
#: Every device's desired state (for tools and tests that watch them all).
DESIRED_STATE_FILTER = f"{_DEVICES}/+/{TopicKind.DESIRED}"


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is a valid id, else raise ProtocolError.

    Ids are 1-128 characters of letters, digits, ``.``, ``_`` and ``-`` and start with a
    letter or digit, so they can never smuggle MQTT wildcards or extra topic levels.
    """
    if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
        raise ProtocolError(f"invalid device id {device_id!r}")
    return device_id


def device_topic(device_id: str, kind: TopicKind) -> str:
    """The topic on which ``device_id`` sends or receives messages of ``kind``."""
    return f"{_DEVICES}/{validate_device_id(device_id)}/{TopicKind(kind).value}"


def ack_topic(device_id: str) -> str:
    """The topic on which the control plane acknowledges ``device_id``'s reports."""
    return f"{ACKS_ROOT}/{validate_device_id(device_id)}"


#: topics parsed lately: a fleet's few topics per device come again and again (a refused
#: one is not remembered: the cache holds only valid topics)
_PARSED_TOPICS = 65_536


@functools.lru_cache(maxsize=_PARSED_TOPICS)
def parse_device_topic(topic: str) -> tuple[str, TopicKind]:
    """Split a device topic into (device id, kind); ProtocolError if it is not one."""
    prefix = f"{_DEVICES}/"
    if not topic.startswith(prefix):
        raise ProtocolError(f"not an EdgeFleet device topic: {topic!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2:
        raise ProtocolError(f"not an EdgeFleet device topic: {topic!r}")
    device_id, kind = parts
    try:
        return validate_device_id(device_id), TopicKind(kind)
    except ValueError as exc:
        raise ProtocolError(f"unknown topic kind in {topic!r}") from exc
