"""``python -m agent.deployment.selection_child``: measure one bundle's candidates, print
the winner and every candidate's figures as one JSON line, exit (and so unload them).

Reads ``{"setup": SelectorSetup JSON, "request": selecting.Request JSON}`` on stdin and
runs ``Selector.select`` as the agent would (the bundle's input sets, the same
selection cache, which it fills). Prints ``answer(selection)``, or
``{"error": one line, "kind": the AgentError class}`` when the selection fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any

from agent.deployment.gate import bundle_input_sets
from agent.deployment.loading import load_runner
from agent.deployment.selecting import Request
from agent.errors import AgentError
from agent.selection import Selection
from agent.selection.setup import SelectorSetup


def answer(selection: Selection) -> dict[str, Any]:
    """What the parent needs: the winner's key and spec, why, every candidate's figures."""
    return {
        "chosen": selection.chosen,
        "spec": dataclasses.asdict(selection.runner.spec),
        "reason": selection.reason,
        "measurements": [dataclasses.asdict(m) for m in selection.measurements],
    }


def run(data: dict[str, Any]) -> dict[str, Any]:
    setup, request = SelectorSetup.from_json(data["setup"]), Request.from_json(data["request"])
    bundle_dir = request.bundle_dir

    def load(spec: Any = None) -> Any:
        return load_runner(
            bundle_dir, expected_name=request.name, expected_version=request.version, spec=spec
        )

    selector = setup.build(portable=False)
    try:
        selection = selector.select(
            bundle_digest=request.digest,
            runtimes=request.runtimes,
            load=load,
            inputs_for=lambda runner: bundle_input_sets(
                runner, bundle_dir, count=selector.settings.guard_sets
            ),
            tolerance=request.tolerance,
            topk=request.topk,
            threads=request.threads,
        )
    except AgentError as exc:
        return {
            "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            "kind": type(exc).__name__,
        }
    selection.runner.close()
    return answer(selection)


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    result = run(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
