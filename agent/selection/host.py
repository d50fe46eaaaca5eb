"""This host's backend candidates: its profile's eligible ones, with the plain-default
variants a user would write (``hw_profiles.plain_defaults``), that a runner plugin here
can actually run (a simulated device's invented facts may name hardware this machine
does not have); none left: each available plugin's default candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

from agent.runners import available_runners
from hw_profiles import (
    CandidateSpec,
    HwProfilesError,
    eligible_candidates,
    match_profile,
    plain_defaults,
)

logger = logging.getLogger(__name__)


def installed_runtimes() -> dict[str, str]:
    """The versions of the runtimes installed here (part of the selection cache key)."""
    versions = {}
    for name in ("onnxruntime", "openvino"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def host_candidates(facts: Mapping[str, Any]) -> tuple[str, list[CandidateSpec]]:
    """(profile name, the candidates to measure here, in the profile's priority order)."""
    runners = available_runners()
    try:
        profile = match_profile(facts)
        eligible = list(eligible_candidates(profile, facts))
        name = profile.name
    except HwProfilesError as exc:
        logger.warning("no hardware profile: %s", exc)
        eligible, name = [], "none"
    eligible = plain_defaults(eligible, facts)
    usable = [s for s in eligible if any(cls.supports(s) for cls in runners.values())]
    dropped = [s.key for s in eligible if s not in usable]
    if dropped:
        logger.info("profile %s: not runnable here: %s", name, ", ".join(dropped))
    if not usable:
        usable = [cls.own_default_spec() for cls in runners.values()]
    return name, usable
