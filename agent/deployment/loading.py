"""Loading a verified bundle into a runner, and the status a settled device reports."""

from __future__ import annotations

from pathlib import Path

from agent.deployment.bundles import read_metadata
from agent.errors import AgentError, VerificationError
from agent.runners import create_runner, create_runner_for
from agent.runners.base import Runner
from agent.runners.choice import check_spec_allowed, runner_for
from agent.runners.heap import release_free_heap
from agent.runners.pages import release_library_pages
from agent.runners.spec import CandidateSpec
from protocol import DeviceStatus


def settled_status(*, serving: bool, failed: bool) -> DeviceStatus:
    """The status once a generation is processed: what the device does *now*.

    A device still serving a model is ACTIVE even if the newest deployment failed (the
    failure is in ``last_error`` and the FAILED event); FAILED means nothing serves.
    """
    if serving:
        return DeviceStatus.ACTIVE
    return DeviceStatus.FAILED if failed else DeviceStatus.IDLE


def load_runner(
    bundle_dir: Path,
    *,
    expected_name: str,
    expected_version: str,
    spec: CandidateSpec | None = None,
) -> Runner:
    """Load a verified bundle into a fresh runner; its signed metadata must match.

    With ``spec``, the runner of that candidate (the bundle's framework and
    ``constraints.runtimes`` must allow its runtime); without, the runner ``runner_for``
    picks, at its default candidate.
    """
    metadata = read_metadata(bundle_dir)
    if (metadata.name, metadata.version) != (expected_name, expected_version):
        raise VerificationError(
            f"bundle holds {metadata.name} {metadata.version}, "
            f"not {expected_name} {expected_version}"
        )
    if spec is None:
        runner = create_runner(runner_for(metadata))
    else:
        check_spec_allowed(metadata, spec)
        runner = create_runner_for(spec)
    try:
        runner.load(bundle_dir, metadata)
    except AgentError:
        runner.close()
        raise
    finally:
        release_free_heap()  # what the load freed (a whole graph, on OpenVINO) is not kept
        release_library_pages()  # nor the library code only the load ran
    return runner
