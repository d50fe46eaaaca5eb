"""EdgeFleet wire contract: MQTT topics and one typed message per topic.

Everything the control plane and the agents say to each other over MQTT is defined
here and nowhere else. This package imports nothing else of ours.

Public surface:
    PROTOCOL_VERSION, TOPIC_ROOT, TopicKind, device_topic, parse_device_topic,
    validate_device_id, DEVICE_REPORTS_FILTER, DESIRED_STATE_FILTER,
    FileRef, ModelAssignment, DesiredState, DeviceStatus, ActiveModel, StateReport,
    EventKind, DeploymentEvent, Heartbeat, ModelMetrics, DiskUsage, Temperature,
    Availability, encode, decode,
    SignedEnvelope, EnvelopeSignature, DESIRED_STATE_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE, TRUST_TOPIC,
    ProtocolError, BrokerAddress, parse_broker_url, mask_url.
"""

from protocol.broker_url import BrokerAddress, mask_url, parse_broker_url
from protocol.errors import ProtocolError
from protocol.messages import (
    DESIRED_STATE_PAYLOAD_TYPE,
    MAX_GENERATION,
    NAME_PATTERN,
    PROTOCOL_VERSION,
    TRUST_PAYLOAD_TYPE,
    ActiveModel,
    Availability,
    DeploymentEvent,
    DesiredState,
    DeviceStatus,
    DiskUsage,
    EnvelopeSignature,
    EventKind,
    FileRef,
    FleetName,
    Heartbeat,
    ModelAssignment,
    ModelMetrics,
    SignedEnvelope,
    StateReport,
    Temperature,
    decode,
    encode,
    message_type_for,
)
from protocol.topics import (
    DESIRED_STATE_FILTER,
    DEVICE_REPORTS_FILTER,
    TOPIC_ROOT,
    TRUST_TOPIC,
    TopicKind,
    device_topic,
    parse_device_topic,
    validate_device_id,
)

__all__ = [
    "DESIRED_STATE_FILTER",
    "DESIRED_STATE_PAYLOAD_TYPE",
    "DEVICE_REPORTS_FILTER",
    "MAX_GENERATION",
    "NAME_PATTERN",
    "PROTOCOL_VERSION",
    "TOPIC_ROOT",
    "TRUST_PAYLOAD_TYPE",
    "TRUST_TOPIC",
    "ActiveModel",
    "Availability",
    "BrokerAddress",
    "DeploymentEvent",
    "DesiredState",
    "DeviceStatus",
    "DiskUsage",
    "EnvelopeSignature",
    "EventKind",
    "FileRef",
    "FleetName",
    "Heartbeat",
    "ModelAssignment",
    "ModelMetrics",
    "ProtocolError",
    "SignedEnvelope",
    "StateReport",
    "Temperature",
    "TopicKind",
    "decode",
    "device_topic",
    "encode",
    "mask_url",
    "message_type_for",
    "parse_broker_url",
    "parse_device_topic",
    "validate_device_id",
]
