"""What a ``Selector`` is built from, as JSON: so that a child process builds the same one.

Measuring loads every candidate, and Python cannot unload a runtime's extension module:
an agent that measured OpenVINO against ONNX Runtime would carry both for good. So the
agent measures in a short-lived child process (``agent.deployment.selecting``) and loads
only the winner itself. ``PortableSelector`` is a ``Selector`` that keeps its ``setup``
for that child; ``SelectorSetup.cached_choice`` answers from the selection cache without
measuring anything (no child when cached, pinned or a single candidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.selection.cache import SelectionCache, cache_key
from agent.selection.selector import SelectionSettings, Selector
from hw_profiles import CandidateSpec


@dataclass(frozen=True)
class SelectorSetup:
    profile: str
    candidates: tuple[CandidateSpec, ...]
    fingerprint: str
    runtimes: dict[str, str]
    #: the selection cache's directory (``SelectionCache``)
    data_dir: Path
    settings: SelectionSettings

    def build(self, *, portable: bool = True) -> Selector:
        """A ``PortableSelector`` (measured in a child process by its caller), or with
        ``portable=False`` a plain ``Selector`` (measured in this process)."""
        return PortableSelector(self) if portable else Selector(**self.selector_arguments())

    def selector_arguments(self) -> dict[str, Any]:
        """``Selector``'s keyword arguments."""
        return {
            "profile": self.profile,
            "candidates": self.candidates,
            "fingerprint": self.fingerprint,
            "runtimes": self.runtimes,
            "cache": SelectionCache(self.data_dir),
            "settings": self.settings,
        }

    def cached_choice(self, bundle_digest: str, keys: Sequence[str]) -> str | None:
        """The cached choice for this bundle on this host if it is among ``keys``."""
        cached = SelectionCache(self.data_dir).get(
            cache_key(bundle_digest, self.fingerprint, self.runtimes)
        )
        return cached[0] if cached is not None and cached[0] in keys else None

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "candidates": [asdict(c) for c in self.candidates],
            "fingerprint": self.fingerprint,
            "runtimes": dict(self.runtimes),
            "data_dir": str(self.data_dir),
            "settings": asdict(self.settings),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelectorSetup:
        return cls(
            profile=str(data["profile"]),
            candidates=tuple(CandidateSpec(**c) for c in data["candidates"]),
            fingerprint=str(data["fingerprint"]),
            runtimes={str(k): str(v) for k, v in data["runtimes"].items()},
            data_dir=Path(data["data_dir"]),
            settings=SelectionSettings(**data["settings"]),
        )


class PortableSelector(Selector):
    """A ``Selector`` that can be rebuilt in another process from its ``setup``."""

    def __init__(self, setup: SelectorSetup) -> None:
        super().__init__(**setup.selector_arguments())
        self.setup = setup


__all__ = ["PortableSelector", "SelectorSetup"]
