"""The gRPC messages the agent builds match the published KServe v2 / Triton proto.

``tritonclient.grpc`` ships the generated code of Triton's ``grpc_service.proto`` (the
KServe v2 proto plus Triton's extras): every message, field, number, type and label
here must be the same there, and the service must have the same full name and rpcs,
or unmodified clients would misread the agent."""

from __future__ import annotations

from typing import Any

from tritonclient.grpc import service_pb2

from agent.serving import grpc_schema


def _fields(descriptor: Any) -> dict[str, tuple[int, int, str, bool]]:
    return {
        f.name: (
            f.number,
            f.type,
            f.message_type.full_name if f.message_type is not None else "",
            f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED,
        )
        for f in descriptor.fields
    }


def _walk(descriptor: Any) -> list[Any]:
    found = [descriptor]
    for nested in descriptor.nested_types:
        found += _walk(nested)
    return found


def test_every_message_matches_the_published_proto() -> None:
    ours = [d for cls in grpc_schema.messages().values() for d in _walk(cls.DESCRIPTOR)]
    assert len(ours) >= 20  # 14 top-level, their nested tensors and map entries
    for descriptor in ours:
        theirs = service_pb2.DESCRIPTOR.pool.FindMessageTypeByName(descriptor.full_name)
        their_fields = _fields(theirs)
        for name, field in _fields(descriptor).items():
            assert their_fields[name] == field, f"{descriptor.full_name}.{name}"


def test_the_service_has_the_published_name_and_rpcs() -> None:
    theirs = service_pb2.DESCRIPTOR.services_by_name[grpc_schema.SERVICE]
    assert theirs.full_name == grpc_schema.SERVICE_NAME == "inference.GRPCInferenceService"
    for name, (request, response) in grpc_schema.METHODS.items():
        method = theirs.methods_by_name[name]
        assert method.input_type.full_name == f"inference.{request}"
        assert method.output_type.full_name == f"inference.{response}"


def test_messages_cross_the_wire_both_ways() -> None:
    request = service_pb2.ModelInferRequest(model_name="m", id="7", raw_input_contents=[b"ab"])
    request.inputs.add(name="x", datatype="FP32", shape=[1, 2]).parameters["p"].string_param = "v"
    ours = grpc_schema.messages()["ModelInferRequest"].FromString(request.SerializeToString())
    assert (ours.model_name, ours.id, list(ours.raw_input_contents)) == ("m", "7", [b"ab"])
    assert ours.inputs[0].parameters["p"].string_param == "v"
    assert service_pb2.ModelInferRequest.FromString(ours.SerializeToString()) == request
