"""Local serving: the models being served (atomic hot swap) and the local inference API.

``models`` holds ``ServedModels``/``LoadedModel`` (public here); ``local_api`` serves them
over the Open Inference Protocol (``oip`` JSON, ``oip_binary`` tensors, ``oip_plans`` for a
binary request's JSON header seen before) on the agent's own
HTTP/1.1 server (``http_server``, ``http_wire``, ``http_slots``), and ``grpc_server`` over
OIP's gRPC service (``grpc_schema`` messages, ``oip_grpc`` tensors; grpcio, imported only
when it starts); ``oip_service`` is what both answer.
"""

from agent.serving.models import LoadedModel, ServedModels

__all__ = ["LoadedModel", "ServedModels"]
