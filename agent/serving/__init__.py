"""Local serving: the models being served (atomic hot swap) and the local inference API.

``models`` holds ``ServedModels``/``LoadedModel`` (public here); ``local_api`` serves them
over the Open Inference Protocol (``oip`` JSON, ``oip_binary`` tensors) on the agent's own
HTTP/1.1 server (``http_server``, ``http_wire``, ``http_slots``).
"""

from agent.serving.models import LoadedModel, ServedModels

__all__ = ["LoadedModel", "ServedModels"]
