"""What ``edge-agent probe`` shows: the facts, the matched profile and its candidates.

``probe_report`` is the JSON object (``HostFacts.to_dict()`` plus ``profile`` and
``candidates``, the keys of the eligible candidates); ``format_table`` renders it as one
line per fact, nested values kept on that line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hw_profiles.catalogue import Profile
from hw_profiles.facts import HostFacts
from hw_profiles.matching import eligible_candidates, match_profile


def probe_report(facts: HostFacts, catalogue: Sequence[Profile] | None = None) -> dict[str, Any]:
    """``facts.to_dict()`` with ``profile`` (its name) and ``candidates`` (keys) added."""
    profile = match_profile(facts, catalogue)
    return {
        **facts.to_dict(),
        "profile": profile.name,
        "candidates": [c.key for c in eligible_candidates(profile, facts)],
    }


def _gpu(item: Mapping[str, Any]) -> str:
    details = [f"{item['memory_mb']} MiB" if item.get("memory_mb") else ""]
    details += [str(item.get("driver") or ""), str(item.get("source") or "")]
    shown = ", ".join(d for d in details if d)
    return f"{item['name']} ({shown})" if shown else str(item["name"])


def compact(value: Any) -> str:
    """One line for a fact: ``-`` for empty, ``k: v; k: v`` for a mapping, lists joined."""
    if value in ("", None) or value == [] or value == {}:
        return "-"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {compact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if all(isinstance(v, Mapping) and "name" in v for v in value):
            return "; ".join(_gpu(v) for v in value)
        texts = [compact(v) for v in value]
        return ("; " if any(" " in t for t in texts) else " ").join(texts)
    return str(value)


def format_table(report: Mapping[str, Any]) -> str:
    """Two columns, one line per key, in the report's order."""
    width = max((len(key) for key in report), default=0)
    return "\n".join(f"{key:<{width}}  {compact(value)}" for key, value in report.items())
