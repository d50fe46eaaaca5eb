"""The ``selecting`` step's backend choice, measured in a short-lived child process.

Measuring loads every candidate (ONNX Runtime, OpenVINO...), and Python cannot unload a
runtime's extension module: done in the agent, an agent serving on ONNX Runtime would
carry OpenVINO (about 50 MB) for good. So when a measurement is due, ``select_backend``
runs ``python -m agent.deployment.selection_child`` (the selector's own ``select``, on
the same bundle, settings and selection cache, from the calling thread's cores), reads
back the winner and every candidate's figures (one JSON line), and loads only the winner
here. No child when the answer needs no measurement: a pin, the selection cache, a single
candidate (the selector loads just that one), or a plain ``Selector`` that cannot be
rebuilt elsewhere (tests). A failure in the child is the deployment's failure, one line,
with the error class the child raised (a crash there never takes the agent down).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import agent.errors as errors
from agent.errors import AgentError
from agent.runners.base import Runner
from agent.selection import Measurement, Selection, Selector
from agent.selection.setup import PortableSelector
from hw_profiles import CandidateSpec
from hw_profiles.runtimes import child_env, last_json_line

logger = logging.getLogger(__name__)

CHILD_MODULE = "agent.deployment.selection_child"
#: the child's time limit beyond the selection budget (its start and its loads)
CHILD_SLACK_S = 120.0


@dataclasses.dataclass(frozen=True)
class Request:
    """One selection, as the child receives it (JSON on its stdin)."""

    bundle_dir: Path
    name: str
    version: str
    digest: str
    runtimes: tuple[str, ...]
    tolerance: float | None = None
    topk: int | None = None
    threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["bundle_dir"] = str(self.bundle_dir)
        data["runtimes"] = list(self.runtimes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        return cls(
            bundle_dir=Path(data["bundle_dir"]),
            name=str(data["name"]),
            version=str(data["version"]),
            digest=str(data["digest"]),
            runtimes=tuple(data["runtimes"]),
            tolerance=data.get("tolerance"),
            topk=data.get("topk"),
            threads=data.get("threads"),
        )


def needs_child(selector: Selector, request: Request, pin: str | None) -> bool:
    """Whether answering takes a measurement that should run in a child process."""
    if pin is not None or not isinstance(selector, PortableSelector):
        return False
    keys = [c.key for c in selector.candidates_for(request.runtimes)]
    if len(keys) < 2:
        return False
    return selector.setup.cached_choice(request.digest, keys) is None


def select_backend(
    selector: Selector,
    request: Request,
    *,
    load: Callable[[Any], Runner],
    inputs_for: Callable[[Runner], Any],
    pin: str | None,
) -> Selection:
    """The loaded winner; the measurement in a child process when one is due."""
    if not needs_child(selector, request, pin):
        return selector.select(
            bundle_digest=request.digest,
            runtimes=request.runtimes,
            load=load,
            inputs_for=inputs_for,
            pin=pin,
            tolerance=request.tolerance,
            topk=request.topk,
            threads=request.threads,
        )
    assert isinstance(selector, PortableSelector)
    started = time.monotonic()
    answer = run_child(selector, request)
    try:
        spec = CandidateSpec(**answer["spec"])
        chosen, reason = str(answer["chosen"]), str(answer["reason"])
        measurements = [Measurement(**m) for m in answer["measurements"]]
    except (KeyError, TypeError) as exc:
        raise AgentError(f"the backend selection process gave a malformed answer: {exc}") from exc
    runner = load(spec)
    logger.info("selection: loaded %s, measured in a child process", spec.key)
    return Selection(
        runner,
        chosen,
        reason,
        selector.profile,
        measurements,
        elapsed_s=time.monotonic() - started,
    )


def run_child(selector: PortableSelector, request: Request) -> dict[str, Any]:
    """Run the selection child; its answer (``selection_child.answer``), or the error it
    reported raised here as the same ``AgentError`` class (one line)."""
    payload = json.dumps({"setup": selector.setup.to_json(), "request": request.to_json()})
    timeout = selector.settings.budget_s + CHILD_SLACK_S
    try:
        done = subprocess.run(
            # -P: not the working directory (the data dir, writable) on its path
            [sys.executable, "-P", "-m", CHILD_MODULE],
            input=payload,
            capture_output=True,
            text=True,
            errors="replace",  # a runtime's log in another encoding is no crash here
            timeout=timeout,
            env=child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AgentError(f"backend selection took longer than {timeout:.0f} s") from exc
    except OSError as exc:
        raise AgentError(f"cannot start the backend selection process: {exc}") from exc
    for line in done.stderr.splitlines():  # its log: each candidate's figures
        if line.strip():
            logger.info("selection child: %s", line.rstrip())
    answer = last_json_line(done.stdout)
    if answer is not None and "error" in answer:
        raise error_class(str(answer.get("kind", "")))(str(answer["error"]))
    if done.returncode != 0 or answer is None:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = f": {lines[-1].strip()[:200]}" if lines else ""
        raise AgentError(f"the backend selection process failed (exit {done.returncode}){why}")
    return answer


def error_class(name: str) -> type[AgentError]:
    """The ``agent.errors`` class of that name (AgentError when there is none)."""
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, AgentError) else AgentError


__all__ = ["Request", "error_class", "needs_child", "run_child", "select_backend"]
