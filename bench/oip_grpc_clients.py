"""OIP gRPC clients for the benchmarks (a helper, not a benchmark): one inference call each.

Two clients of the KServe v2 gRPC service, for any server that speaks it (the agent's
``local_grpc``, Triton, KServe/MLServer):

- ``TritonGrpc``: the unmodified ``tritonclient.grpc`` client, as Triton users call it
  (``InferInput.set_data_from_numpy`` on each call, outputs read with ``as_numpy``);
- ``RawGrpc``: the same request on the generated stub that ``tritonclient.grpc`` ships
  (``service_pb2_grpc``), the tensors as ``raw_input_contents`` and the outputs decoded
  with ``np.frombuffer``: the least a Python gRPC client can do per call.

Both are made for one model and one set of input names/datatypes, and return the outputs
by name; a call that fails raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

#: as tritonclient.grpc: no message size limit short of what gRPC allows
_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class TritonGrpc:
    """``tritonclient.grpc.InferenceServerClient`` calling ``model`` at ``address``."""

    def __init__(self, address: str, model: str) -> None:
        self.client = triton.InferenceServerClient(address)
        self.model = model

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = []
        for name, array in inputs.items():
            tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        result = self.client.infer(self.model, tensors)
        return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

    def close(self) -> None:
        self.client.close()


class RawGrpc:
    """The generated ``GRPCInferenceService`` stub calling ``model`` at ``address``."""

    def __init__(self, address: str, model: str) -> None:
        self.channel = grpc.insecure_channel(address, options=_OPTIONS)
        self.stub: Any = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.model = model

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = service_pb2.ModelInferRequest(model_name=self.model)
        for name, array in inputs.items():
            datatype = np_to_triton_dtype(array.dtype)
            request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
            request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        response = self.stub.ModelInfer(request, timeout=60)
        return {
            out.name: np.frombuffer(raw, triton_to_np_dtype(out.datatype)).reshape(out.shape)
            for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
        }

    def close(self) -> None:
        self.channel.close()
