"""The KServe v2 gRPC messages (``inference.GRPCInferenceService``), built in a private pool.

The wire contract is KServe's published ``grpc_predict_v2.proto`` (package ``inference``,
Apache-2.0; Triton's ``grpc_service.proto`` is a superset with the same names and field
numbers). This module writes down the part the agent serves, field by field with the
published numbers, as a ``FileDescriptorProto``, and builds the message classes from it in
a descriptor pool of its own, not protobuf's default pool. Why not ``protoc``-generated
``_pb2`` modules: they register ``inference.ModelInferRequest`` & co. in the default pool,
and so does ``tritonclient.grpc`` (its own generated ``service_pb2``); a process holding
both (a test, a benchmark, an application embedding the agent beside the Triton client)
would fail at import with "duplicate symbol". A private pool has no such clash and needs
no code generator. ``tests/unit/agent/test_grpc_schema.py`` checks every message and
field here against the published proto that ``tritonclient.grpc`` ships.

Imports protobuf: imported only when the gRPC server starts (``agent.serving.grpc_server``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = "GRPCInferenceService"
#: the service's full name, as gRPC routes it: ``/inference.GRPCInferenceService/ModelInfer``
SERVICE_NAME = f"{PACKAGE}.{SERVICE}"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}

# (name, type, number, label): "repeated T", "map<T>" (map<string, T>) or a message name
_Field = tuple[str, str, int]
_PARAMETERS: _Field = ("parameters", "map<InferParameter>", 4)
_TENSOR_METADATA: list[_Field] = [
    ("name", "string", 1),
    ("datatype", "string", 2),
    ("shape", "repeated int64", 3),
]
#: message name -> fields; "A.B" is B nested in A
_MESSAGES: dict[str, list[_Field]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", "bool", 1)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", "bool", 1)],
    "ModelReadyRequest": [("name", "string", 1), ("version", "string", 2)],
    "ModelReadyResponse": [("ready", "bool", 1)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", "string", 1),
        ("version", "string", 2),
        ("extensions", "repeated string", 3),
    ],
    "ModelMetadataRequest": [("name", "string", 1), ("version", "string", 2)],
    "ModelMetadataResponse": [
        ("name", "string", 1),
        ("versions", "repeated string", 2),
        ("platform", "string", 3),
        ("inputs", "repeated ModelMetadataResponse.TensorMetadata", 4),
        ("outputs", "repeated ModelMetadataResponse.TensorMetadata", 5),
    ],
    "ModelMetadataResponse.TensorMetadata": _TENSOR_METADATA,
    "ModelInferRequest": [
        ("model_name", "string", 1),
        ("model_version", "string", 2),
        ("id", "string", 3),
        _PARAMETERS,
        ("inputs", "repeated ModelInferRequest.InferInputTensor", 5),
        ("outputs", "repeated ModelInferRequest.InferRequestedOutputTensor", 6),
        ("raw_input_contents", "repeated bytes", 7),
    ],
    "ModelInferRequest.InferInputTensor": [
        *_TENSOR_METADATA,
        _PARAMETERS,
        ("contents", "InferTensorContents", 5),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", "string", 1),
        ("parameters", "map<InferParameter>", 2),
    ],
    "ModelInferResponse": [
        ("model_name", "string", 1),
        ("model_version", "string", 2),
        ("id", "string", 3),
        _PARAMETERS,
        ("outputs", "repeated ModelInferResponse.InferOutputTensor", 5),
        ("raw_output_contents", "repeated bytes", 6),
    ],
    "ModelInferResponse.InferOutputTensor": [
        *_TENSOR_METADATA,
        _PARAMETERS,
        ("contents", "InferTensorContents", 5),
    ],
    "InferParameter": [  # a oneof "parameter_choice" of the three
        ("bool_param", "bool", 1),
        ("int64_param", "int64", 2),
        ("string_param", "string", 3),
    ],
    "InferTensorContents": [
        ("bool_contents", "repeated bool", 1),
        ("int_contents", "repeated int32", 2),
        ("int64_contents", "repeated int64", 3),
        ("uint_contents", "repeated uint32", 4),
        ("uint64_contents", "repeated uint64", 5),
        ("fp32_contents", "repeated float", 6),
        ("fp64_contents", "repeated double", 7),
        ("bytes_contents", "repeated bytes", 8),
    ],
}
#: rpc name -> (request message, response message)
METHODS: dict[str, tuple[str, str]] = {
    name: (f"{name}Request", f"{name}Response")
    for name in (
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    )
}


def _set_type(field: Any, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{type_name}"


def _add_field(message: Any, path: str, name: str, spec: str, number: int) -> None:
    """Add field ``name`` (``spec`` as in ``_MESSAGES``) to ``message``, named ``path``."""
    field = message.field.add(name=name, number=number, json_name=_camel(name))
    if spec.startswith("map<"):
        value = spec[4:-1]
        entry = message.nested_type.add(name=_camel(name, upper=True) + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
        _set_type(entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL), value)
        field.label = _F.LABEL_REPEATED
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{path}.{entry.name}"
        return
    repeated = spec.startswith("repeated ")
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    _set_type(field, spec.removeprefix("repeated "))


def _camel(name: str, *, upper: bool = False) -> str:
    head, *rest = name.split("_")
    text = head + "".join(part.title() for part in rest)
    return text[:1].upper() + text[1:] if upper else text


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema as a ``FileDescriptorProto`` (messages and the service)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="edgefleet/grpc_predict_v2.proto", package=PACKAGE, syntax="proto3"
    )
    built: dict[str, Any] = {}
    for path in _MESSAGES:  # parents come before the messages nested in them
        parent, _, leaf = path.rpartition(".")
        message = (built[parent].nested_type if parent else proto.message_type).add(name=leaf)
        built[path] = message
    for path, fields in _MESSAGES.items():
        for name, spec, number in fields:
            _add_field(built[path], path, name, spec, number)
    choice = built["InferParameter"]
    choice.oneof_decl.add(name="parameter_choice")
    for field in choice.field:
        field.oneof_index = 0
    service = proto.service.add(name=SERVICE)
    for name, (request, response) in METHODS.items():
        service.method.add(
            name=name, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}"
        )
    return proto


@cache
def messages() -> dict[str, Any]:
    """Message class by name ("ModelInferRequest", ...; nested ones not listed)."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_descriptor().SerializeToString())
    return {
        path: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{path}"))
        for path in _MESSAGES
        if "." not in path
    }
