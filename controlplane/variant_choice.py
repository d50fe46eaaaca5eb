"""Which variant of a model version a device receives: a pure choice, no database.

A model version has a default bundle (the ``ModelVersion`` row) and may carry further
variants (``ModelVariant``: an OpenVINO IR beside an ONNX file, say). Each device reports
the runtimes it prefers, best first (``Device.runtimes``, from its hardware profile).
The device receives the variant of the **first** of its runtimes that runs some variant
*natively* (runtime ``openvino`` runs framework ``openvino``; ``onnxruntime`` runs
``onnx``); among several such variants, the default wins, then the oldest. A variant
whose bundle constraints name runtimes is native only to those. No match (or a device
that reports no runtimes, e.g. an older agent): the default, which is also what a
runtime that runs other frameworks too (OpenVINO reads ONNX) falls back to.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, TypeVar

#: The bundle framework each runtime runs natively (``model_store`` framework names).
NATIVE_FRAMEWORK: Mapping[str, str] = {"openvino": "openvino", "onnxruntime": "onnx"}


class Choosable(Protocol):
    """What the choice looks at in a variant."""

    @property
    def framework(self) -> str: ...

    @property
    def allowed_runtimes(self) -> Collection[str] | None:
        """The bundle's ``constraints.runtimes`` (None: any runtime)."""
        ...


V = TypeVar("V", bound=Choosable)


def runs_natively(runtime: str, variant: Choosable) -> bool:
    """Whether ``runtime`` runs ``variant``'s framework natively and may run the bundle."""
    allowed = variant.allowed_runtimes
    return NATIVE_FRAMEWORK.get(runtime) == variant.framework and (
        allowed is None or runtime in allowed
    )


def choose_variant(runtimes: Sequence[str], variants: Sequence[V]) -> V:
    """The variant a device preferring ``runtimes`` (best first) receives.

    ``variants``: the default first, then the others oldest first. ValueError if empty.
    """
    if not variants:
        raise ValueError("a model version has at least its default variant")
    for runtime in runtimes:
        for variant in variants:
            if runs_natively(runtime, variant):
                return variant
    return variants[0]
