"""What the Open Inference Protocol answers, whatever carries it (REST or gRPC).

The local API (``agent.serving.local_api``, REST) and the gRPC server
(``agent.serving.grpc_server``) are two transports over these functions: server and model
metadata, model readiness, and one inference on the model currently serving a name.
``infer`` holds that model with ``ServedModels.use`` from decoding to encoding, so an
answer is wholly from one model version even across a hot swap; the transport supplies
how a request is decoded (``agent.serving.oip`` checks every tensor) and how the outputs
are written. Errors are the agent's (``ModelNotFound``, ``InvalidInput``,
``InferenceError``...); each transport maps them to its status codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from agent.errors import InferenceError, ModelNotFound
from agent.serving.models import LoadedModel, ServedModels

if TYPE_CHECKING:
    import numpy as np

    from agent.serving import oip

SERVER_NAME = "edgefleet-agent"

T = TypeVar("T")
#: a request decoded for a model: (the parsed request, its checked input arrays)
Decoded = tuple["oip.InferenceRequest", dict[str, "np.ndarray"]]


def check_version(model: LoadedModel, version: str | None) -> None:
    """ModelNotFound unless ``version`` (None: any) is the served one."""
    if version is not None and version != model.version:
        raise ModelNotFound(f"model {model.name!r} version {version!r} is not active")


def model_metadata(models: ServedModels, name: str, version: str | None) -> dict[str, Any]:
    """The OIP model metadata of ``name`` (ModelNotFound if not served at ``version``)."""
    model = models.get(name)
    check_version(model, version)
    from agent.serving import oip  # here, not at the top: it loads numpy (idle agents don't)

    return oip.model_metadata(
        name=model.name,
        version=model.version,
        platform=model.runner.platform,
        inputs=model.runner.inputs,
        outputs=model.runner.outputs,
    )


def model_ready(models: ServedModels, name: str, version: str | None) -> bool:
    """Whether ``name`` is served (at ``version``, if given)."""
    try:
        check_version(models.get(name), version)
    except ModelNotFound:
        return False
    return True


def infer(
    models: ServedModels,
    name: str,
    version: str | None,
    decode: Callable[[LoadedModel], Decoded],
    encode: Callable[[LoadedModel, oip.InferenceRequest, dict[str, np.ndarray]], T],
) -> T:
    """Decode, run and encode one request on the model currently serving ``name``."""
    with models.use(name) as model:
        check_version(model, version)
        request, inputs = decode(model)
        outputs = model.infer(inputs)
        for wanted in request.outputs or ():  # a loop, not a list: no frame of its own
            if wanted.name not in outputs:
                raise InferenceError(f"model did not produce output {wanted.name!r}")
        return encode(model, request, outputs)
