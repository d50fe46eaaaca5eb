"""EdgeFleet wire contract: MQTT topics and one typed message per topic.

Everything the control plane and the agents say to each other over MQTT is defined
here and nowhere else. This package imports nothing else of ours.

Public surface:
    PROTOCOL_VERSION, TOPIC_ROOT, TopicKind, device_topic, parse_device_topic,
    validate_device_id, DEVICE_REPORTS_FILTER, DESIRED_STATE_FILTER,
    FileRef, ModelAssignment, Priority, DesiredState, DeviceStatus, ActiveModel, ModelFailure,
    StateReport,
    ShadowSpec, ShadowFigures, ShadowVerdict, SHADOW_GATE_PREFIX,
    SelectionReport, CandidateFigures, BackendKey, BACKEND_KEY_PATTERN,
    EventKind, DeploymentEvent, Heartbeat, ModelMetrics, DiskUsage, Temperature,
    Availability, encode, decode,
    SignedEnvelope, EnvelopeSignature, DESIRED_STATE_PAYLOAD_TYPE, TRUST_PAYLOAD_TYPE, TRUST_TOPIC,
    ProtocolError, BrokerAddress, parse_broker_url, mask_url,
    MAX_REPORT_BYTES, MAX_PACKET_BYTES, MAX_ENVELOPE_PAYLOAD, MAX_INT64, MAX_GENERATION
    (size and range limits: ``protocol.fields``).
"""

from protocol.broker_url import BrokerAddress, mask_url, parse_broker_url
from protocol.errors import ProtocolError
from protocol.fields import (
    MAX_ENVELOPE_PAYLOAD,
    MAX_GENERATION,
    MAX_INT64,
    MAX_PACKET_BYTES,
    MAX_REPORT_BYTES,
    NAME_PATTERN,
    PROTOCOL_VERSION,
    FleetName,
)
from protocol.messages import (
    DESIRED_STATE_PAYLOAD_TYPE,
    TRUST_PAYLOAD_TYPE,
    DesiredState,
    EnvelopeSignature,
    FileRef,
    ModelAssignment,
    Priority,
    SignedEnvelope,
    decode,
    decode_body,
    encode,
    message_type_for,
)
from protocol.reports import (
    ActiveModel,
    Availability,
    DeploymentEvent,
    DeviceStatus,
    DiskUsage,
    EventKind,
    Heartbeat,
    ModelFailure,
    ModelMetrics,
    StateReport,
    Temperature,
)
from protocol.selection import (
    BACKEND_KEY_MAX,
    BACKEND_KEY_PATTERN,
    BackendKey,
    CandidateFigures,
    SelectionReport,
)
from protocol.shadow import SHADOW_GATE_PREFIX, ShadowFigures, ShadowSpec, ShadowVerdict
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
    "BACKEND_KEY_MAX",
    "BACKEND_KEY_PATTERN",
    "DESIRED_STATE_FILTER",
    "DESIRED_STATE_PAYLOAD_TYPE",
    "DEVICE_REPORTS_FILTER",
    "MAX_ENVELOPE_PAYLOAD",
    "MAX_GENERATION",
    "MAX_INT64",
    "MAX_PACKET_BYTES",
    "MAX_REPORT_BYTES",
    "NAME_PATTERN",
    "PROTOCOL_VERSION",
    "SHADOW_GATE_PREFIX",
    "TOPIC_ROOT",
    "TRUST_PAYLOAD_TYPE",
    "TRUST_TOPIC",
    "ActiveModel",
    "Availability",
    "BackendKey",
    "BrokerAddress",
    "CandidateFigures",
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
    "ModelFailure",
    "ModelMetrics",
    "Priority",
    "ProtocolError",
    "SelectionReport",
    "ShadowFigures",
    "ShadowSpec",
    "ShadowVerdict",
    "SignedEnvelope",
    "StateReport",
    "Temperature",
    "TopicKind",
    "decode",
    "decode_body",
    "device_topic",
    "encode",
    "mask_url",
    "message_type_for",
    "parse_broker_url",
    "parse_device_topic",
    "validate_device_id",
]
