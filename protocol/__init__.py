"""EdgeFleet wire contract: MQTT topics and one typed message per topic.

Everything the control plane and the agents say to each other over MQTT is defined
here and nowhere else. This package imports nothing else of ours.

Public surface:
    PROTOCOL_VERSION, TOPIC_ROOT, TopicKind, device_topic, parse_device_topic,
    validate_device_id, DEVICE_REPORTS_FILTER, DESIRED_STATE_FILTER,
    FileRef, ModelAssignment, DesiredState, DeviceStatus, ActiveModel, StateReport,
    EventKind, DeploymentEvent, Heartbeat, Availability, encode, decode,
    ProtocolError.
"""

from protocol.errors import ProtocolError
from protocol.messages import (
    PROTOCOL_VERSION,
    ActiveModel,
    Availability,
    DeploymentEvent,
    DesiredState,
    DeviceStatus,
    EventKind,
    FileRef,
    Heartbeat,
    ModelAssignment,
    StateReport,
    decode,
    encode,
    message_type_for,
)
from protocol.topics import (
    DESIRED_STATE_FILTER,
    DEVICE_REPORTS_FILTER,
    TOPIC_ROOT,
    TopicKind,
    device_topic,
    parse_device_topic,
    validate_device_id,
)

__all__ = [
    "DESIRED_STATE_FILTER",
    "DEVICE_REPORTS_FILTER",
    "PROTOCOL_VERSION",
    "TOPIC_ROOT",
    "ActiveModel",
    "Availability",
    "DeploymentEvent",
    "DesiredState",
    "DeviceStatus",
    "EventKind",
    "FileRef",
    "Heartbeat",
    "ModelAssignment",
    "ProtocolError",
    "StateReport",
    "TopicKind",
    "decode",
    "device_topic",
    "encode",
    "message_type_for",
    "parse_device_topic",
    "validate_device_id",
]
