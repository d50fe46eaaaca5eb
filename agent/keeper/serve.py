"""The keeper child's loop (``python -m agent.keeper``): settings on the first line of
stdin, then one request per line, one answer per line on stdout, until stdin closes.

Logs go to stderr (the agent's own log, where it runs under systemd or a container).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from agent.errors import AgentError
from agent.keeper.api import KeeperSettings
from agent.keeper.local import LocalKeeper
from agent.keeper.wire import (
    b64,
    error_name,
    identity_of,
    identity_to_json,
    line,
    manifest_to_json,
    unb64,
)
from agent.logsetup import setup_logging
from model_store.errors import ModelStoreError
from protocol import SignedEnvelope

logger = logging.getLogger(__name__)

Op = Callable[[LocalKeeper, dict[str, Any]], object]


def _verify_command(keeper: LocalKeeper, args: dict[str, Any]) -> object:
    envelope = SignedEnvelope.model_validate_json(unb64(args["envelope"]))
    command = keeper.verify_command(
        envelope, device_id=str(args["device_id"]), now=datetime.fromisoformat(args["now"])
    )
    return {"payload": b64(command.payload), "digest": command.digest}


def _renew(keeper: LocalKeeper, args: dict[str, Any]) -> object:
    identity = identity_of(args["identity"])
    assert identity is not None
    return identity_to_json(keeper.renew(identity))


OPS: dict[str, Op] = {
    "open_trust": lambda k, a: k.open_trust(),
    "ensure_trust": lambda k, a: k.ensure_trust(),
    "offer_trust": lambda k, a: k.offer_trust(unb64(a["raw"])),
    "verify_command": _verify_command,
    "verify_signature": lambda k, a: manifest_to_json(
        k.verify_signature(unb64(a["signature"]), fresh=bool(a["fresh"]))
    ),
    "verify_bundle": lambda k, a: manifest_to_json(k.verify_bundle(Path(a["bundle_dir"]))),
    "load_identity": lambda k, a: identity_to_json(k.load_identity()),
    "enroll": lambda k, a: identity_to_json(k.enroll(str(a["token"]))),
    "renew": _renew,
    "seal_signed": lambda k, a: b64(
        k.seal_signed(str(a["stream"]), int(a["seq"]), unb64(a["body"]))
    ),
}


def answer(keeper: LocalKeeper, request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request (an error of the operation is an answer too)."""
    op = OPS.get(str(request.get("op")))
    try:
        if op is None:
            raise ValueError(f"unknown keeper operation {str(request.get('op'))[:40]!r}")
        reply: dict[str, Any] = {"result": op(keeper, dict(request.get("args") or {}))}
    except Exception as exc:  # every failure is answered: the agent decides what it means
        if not isinstance(exc, AgentError | ModelStoreError):  # a bug: its trace, here
            logger.exception("keeper: %s failed", request.get("op"))
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reply = {"error": error_name(exc), "message": text}
    reply["trust_version"] = keeper.trust_version
    reply["refused"] = keeper.refused_trust
    return reply


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    first = stdin.readline()
    if not first:
        return 0
    settings = json.loads(first)
    floor = int(settings.get("trust_floor", 0))
    keeper = LocalKeeper(KeeperSettings.from_json(settings), trust_floor=floor)
    try:
        keeper.open_trust()  # so that every answer says the trust version
    except (AgentError, ModelStoreError) as exc:  # raised again by what needs trust
        logger.debug("keeper: trust not opened yet: %s", exc)
    try:
        for raw in stdin:
            stdout.write(line(answer(keeper, json.loads(raw))))
            stdout.flush()
    finally:
        keeper.close()
    return 0


def main() -> int:
    setup_logging(False, tag="keeper")  # as the agent's own lines (the journal's form)
    # the answers get a descriptor of their own; whatever a library prints, from Python or
    # from native code, goes to stderr and never among them
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(sys.stdin.buffer, answers)
